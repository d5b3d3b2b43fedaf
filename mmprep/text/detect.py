"""Which legacy encoding explains a byte string, for texts too short for a statistical detector alone.

charset-normalizer ranks candidates well on paragraphs but guesses wildly on a caption of a few
characters (GBK ``你好`` comes back as Big5, latin-1 ``café`` as UTF-16). So every candidate that
decodes strictly (charset-normalizer's, then a fixed CJK + Western fallback list) is scored by how
implausible its text is, and the least implausible wins; ties keep charset-normalizer's order.

Implausible, per character (the score is the sum):
- control characters other than tab/newline/CR, private-use, unassigned or replacement characters;
- an ideograph outside the common sets (GB2312, Big5 level 1, JIS X 0208 level 1): mis-decoded
  double-byte text lands on rare ideographs about half of the time;
- half-width katakana (a cp932 reading of GBK bytes), Hanja next to Hangul (an EUC-KR reading);
- a non-Latin letter glued to an ASCII letter (``cafй``), an ideograph inside an ASCII word;
- two Latin-1 supplement characters in a row (``ÄãºÃ``: a latin-1 reading of double-byte text).
"""

from __future__ import annotations

import codecs
import functools
import unicodedata

COMMON = ("gb18030", "big5", "cp932", "euc_kr", "cp1252", "cp1251", "latin_1")
"""Encodings tried by default, in order of preference when two readings are equally plausible."""

# Where the frequent ideographs of each double-byte family live (level 1 of the national standard).
_COMMON_RANGES = {"gb": ("gb2312", 0xB0A1, 0xD7F9), "big5": ("big5", 0xA440, 0xC67E),
                  "jis": ("shift_jis", 0x889F, 0x9872)}
_FAMILY = {"gb18030": "gb", "gbk": "gb", "gb2312": "gb", "big5": "big5", "big5hkscs": "big5", "cp950": "big5",
           "cp932": "jis", "shift_jis": "jis", "euc_jp": "jis"}


def _canon(name: str) -> str:
    try:
        return codecs.lookup(name).name.replace("-", "_")
    except LookupError:
        return name


@functools.lru_cache(maxsize=65536)
def _in_range(ch: str, family: str) -> bool:
    enc, lo, hi = _COMMON_RANGES[family]
    try:
        b = ch.encode(enc)
    except UnicodeEncodeError:
        return False
    return len(b) == 2 and lo <= int.from_bytes(b, "big") <= hi


def _common_ideograph(ch: str, family: str | None) -> bool:
    if family is not None:
        return _in_range(ch, family)
    return any(_in_range(ch, f) for f in _COMMON_RANGES)


def _is_han(ch: str) -> bool:
    o = ord(ch)
    return 0x4E00 <= o <= 0x9FFF or 0x3400 <= o <= 0x4DBF or 0xF900 <= o <= 0xFAFF or 0x20000 <= o <= 0x3FFFF


def _is_hangul(ch: str) -> bool:
    return "\uac00" <= ch <= "\ud7a3"


def _ascii_letter(ch: str) -> bool:
    return ch.isascii() and ch.isalpha()


def implausibility(text: str, encoding: str | None = None) -> float:
    """Sum of per-character penalties (see the module docstring); 0.0 for clean text.

    ``encoding`` (a canonical codec name) narrows "common ideograph" to that encoding's level-1 set.
    """
    family = _FAMILY.get(encoding or "")
    score = 0.0
    prev = ""
    n = len(text)
    for i, ch in enumerate(text):
        nxt = text[i + 1] if i + 1 < n else ""
        if ch.isascii():
            if ch < " " and ch not in "\t\n\r" or ch == "\x7f":
                score += 2
            prev = ch
            continue
        cat = unicodedata.category(ch)
        if cat in ("Cc", "Co", "Cn", "Cs") or ch == "\ufffd":
            score += 2
        elif _is_han(ch):
            if not _common_ideograph(ch, family):
                score += 1
            if _ascii_letter(prev) and _ascii_letter(nxt):
                score += 1
            if _is_hangul(prev) or _is_hangul(nxt):
                score += 1
        elif 0xFF61 <= ord(ch) <= 0xFF9F:
            score += 1
        elif ord(ch) <= 0xFF:
            if "\x80" <= prev <= "\xff" or "\x80" <= nxt <= "\xff":
                score += 0.25 if cat[0] == "L" else 0.5
            if cat[0] != "L" and (_ascii_letter(prev) or _ascii_letter(nxt)):
                score += 0.5
        elif cat[0] == "L" and (_ascii_letter(prev) or _ascii_letter(nxt)) and ord(ch) > 0x24F:
            score += 1
        prev = ch
    return score


def best_decoding(data: bytes, *, candidates: tuple[str, ...] | None = None) -> tuple[str, str, float] | None:
    """(text, encoding, implausibility) of the most plausible strict decoding, or None when none decodes.

    ``candidates``: encodings to try, in order of preference (default :data:`COMMON`). For 64 bytes
    and more, charset-normalizer's pick among them is tried first (it is reliable on longer texts).
    """
    order = [_canon(c) for c in (candidates or COMMON)]
    if len(data) >= 64:
        from charset_normalizer import from_bytes

        guess = from_bytes(data, cp_isolation=order).best()
        if guess is not None:
            order.insert(0, _canon(guess.encoding))
    seen: set[str] = set()
    best: tuple[str, str, float] | None = None
    for name in order:
        if name in seen or name.startswith(("utf_16", "utf_32")):
            continue  # UTF-16/32 only with a BOM: without one, any even-length bytes "decode"
        seen.add(name)
        try:
            text = data.decode(name)
        except (UnicodeDecodeError, LookupError):
            continue
        score = implausibility(text, name)
        if best is None or score < best[2]:
            best = (text, name, score)
    return best
