"""Script counts, language routing (zh / en / mixed / ja / ko / other) and Han-vs-rest run splitting.

Routing is by writing system, not a statistical language model: Han ideographs make Chinese,
kana make Japanese, Hangul Korean, Latin letters "en" (so French also routes to "en": the English
tokenizers split it sensibly). Shares are of letters only (digits, punctuation, emoji don't vote).
"""

from __future__ import annotations

import re
from collections import Counter
from typing import Any

HAN = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0003ffff"
_HAN_RUN = re.compile(f"([{HAN}]+)")
# A Chinese run: ideographs plus the CJK punctuation and full-width forms between them.
_ZH_RUN = re.compile(f"([{HAN}\u3000-\u303f\uff00-\uffef]+)")


def script_of(ch: str) -> str | None:
    o = ord(ch)
    if ch.isascii():
        return "latin" if ch.isalpha() else None
    if 0x4E00 <= o <= 0x9FFF or 0x3400 <= o <= 0x4DBF or 0xF900 <= o <= 0xFAFF or 0x20000 <= o <= 0x3FFFF:
        return "han"
    if 0x3040 <= o <= 0x30FF or 0x31F0 <= o <= 0x31FF or 0xFF66 <= o <= 0xFF9F:
        return "kana"
    if 0xAC00 <= o <= 0xD7A3 or 0x1100 <= o <= 0x11FF or 0x3130 <= o <= 0x318F:
        return "hangul"
    if not ch.isalpha():
        return None
    if o <= 0x24F or 0x1E00 <= o <= 0x1EFF or 0xFF21 <= o <= 0xFF5A:
        return "latin"
    if 0x400 <= o <= 0x52F:
        return "cyrillic"
    return "other"


_COUNTED = {
    "han": re.compile(f"[{HAN}]+"),
    "latin": re.compile("[A-Za-z\u00c0-\u00d6\u00d8-\u00f6\u00f8-\u024f\u1e00-\u1eff\uff21-\uff3a\uff41-\uff5a]+"),
    "kana": re.compile("[\u3040-\u30ff\u31f0-\u31ff\uff66-\uff9f]+"),
    "hangul": re.compile("[\uac00-\ud7a3\u1100-\u11ff\u3130-\u318f]+"),
    "cyrillic": re.compile("[\u0400-\u052f]+"),
}
_LETTER = re.compile(r"[^\W\d_]+")
_ASCII_LETTER = re.compile("[A-Za-z]")


def script_counts(text: str, limit: int = 100_000) -> Counter[str]:
    """Letters per script in the first ``limit`` characters (enough to route; bounded cost).

    Same classes as :func:`script_of`, counted with regular expressions (C speed, not a Python loop).
    """
    text = text[:limit]
    counts: Counter[str] = Counter()
    for name, pattern in _COUNTED.items():
        n = sum(map(len, pattern.findall(text)))
        if n:
            counts[name] = n
    other = sum(map(len, _LETTER.findall(text))) - sum(counts.values())
    if other > 0:
        counts["other"] = other
    return counts


def detect(text: str, *, mixed_share: float = 0.1) -> dict[str, Any]:
    """``{"lang": zh|en|mixed|ja|ko|other|und, "scripts": {script: share}}``.

    ``mixed`` when both Han and Latin hold at least ``mixed_share`` of the letters; kana anywhere in
    Han text makes it Japanese (kana share >= 5%).
    """
    if text.isascii():  # the common English case, in C: no letter-by-letter counting needed
        return {"lang": "en", "scripts": {"latin": 1.0}} if _ASCII_LETTER.search(text) else {"lang": "und",
                                                                                              "scripts": {}}
    return _detect(text, mixed_share)


def lang_of(text: str, *, mixed_share: float = 0.1) -> str:
    """``detect(text)["lang"]`` without building the shares for the ASCII case (the tokenizer's routing)."""
    if text.isascii():
        return "en" if _ASCII_LETTER.search(text) else "und"
    return _detect(text, mixed_share)["lang"]


def _detect(text: str, mixed_share: float) -> dict[str, Any]:
    counts = script_counts(text)
    total = sum(counts.values())
    if not total:
        return {"lang": "und", "scripts": {}}
    share = {k: round(v / total, 4) for k, v in counts.most_common()}
    han, latin, kana = share.get("han", 0.0), share.get("latin", 0.0), share.get("kana", 0.0)
    if kana >= 0.05:
        lang = "ja"
    elif share.get("hangul", 0.0) >= 0.3:
        lang = "ko"
    elif han >= mixed_share and latin >= mixed_share:
        lang = "mixed"
    elif han >= 0.5:
        lang = "zh"
    elif latin >= 0.5:
        lang = "en"
    else:
        lang = "other"
    return {"lang": lang, "scripts": share}


def han_runs(text: str) -> list[tuple[bool, str]]:
    """Split into alternating runs: ``(True, chinese_run)`` / ``(False, other_run)``, covering the text.

    A Chinese run is ideographs with the CJK punctuation between them; everything else (Latin,
    digits, emoji, spaces) goes to the other runs.
    """
    return [(i % 2 == 1, part) for i, part in enumerate(_ZH_RUN.split(text)) if part]
