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
- kana in a Chinese reading (GB2312 has them where Big5 has its most frequent characters: ``中文`` in
  Big5 read as GB is ``いゅ``);
- a non-Latin letter glued to an ASCII letter (``cafй``), an ideograph inside an ASCII word;
- two Latin-1 supplement characters in a row (``ÄãºÃ``: a latin-1 reading of double-byte text);
- half a point for a Hangul syllable outside KS X 1001's 2,350 (a cp949 reading of Big5 or GBK bytes).

EUC-KR Hangul (lead bytes 0xB0-0xC8) are also valid GB2312 level-1 ideographs, so a Korean text and its
Chinese reading often score the same. Such a tie goes to the Korean reading when it has more of
Korean's most frequent syllables (particles, endings: charset-normalizer's frequency table) than the
Chinese reading has of Chinese's most frequent characters (的, 是, 了...): a Chinese reading of Korean
bytes is a string of unrelated ideographs that hardly ever holds one. One or two syllables are too
little to tell, and stay Chinese.
"""

from __future__ import annotations

import codecs
import functools
import unicodedata

COMMON = ("gb18030", "big5", "cp932", "euc_kr", "cp949", "cp1252", "cp1251", "latin_1")
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


@functools.lru_cache(maxsize=16384)
def _ks_x_1001(ch: str) -> bool:
    """Whether a Hangul syllable is one of the 2,350 that EUC-KR can encode (the common ones)."""
    try:
        ch.encode("euc_kr")
    except UnicodeEncodeError:
        return False
    return True


def _ascii_letter(ch: str) -> bool:
    return ch.isascii() and ch.isalpha()


def _opening(ch: str, prev: str) -> bool:
    """Spanish ``¡``/``¿`` opening a word (``¡Hola!``), not glued to the end of one."""
    return ch in "¡¿" and not _ascii_letter(prev)


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
        elif 0xFF61 <= ord(ch) <= 0xFF9F or (0x3041 <= ord(ch) <= 0x30FA and family not in ("jis", None)):
            score += 1
        elif _is_hangul(ch) and not _ks_x_1001(ch):
            score += 0.5
        elif ord(ch) <= 0xFF:
            if "\x80" <= prev <= "\xff" or "\x80" <= nxt <= "\xff":
                score += 0.25 if cat[0] == "L" else 0.5
            if cat[0] != "L" and (_ascii_letter(prev) or _ascii_letter(nxt)) and not _opening(ch, prev):
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
    pinned = set(order) if candidates else set()  # named by the caller: tried even when BOM-less UTF-16/32
    if len(data) >= 64:
        from charset_normalizer import from_bytes

        guess = from_bytes(data, cp_isolation=order).best()
        if guess is not None:
            name = _canon(guess.encoding)
            # EUC-KR text is named as such, cp949 (its superset) only when it needs the extension
            order[:0] = ["euc_kr", name] if name == "cp949" and "euc_kr" in order else [name]
    seen: set[str] = set()
    best: tuple[str, str, float] | None = None
    korean: tuple[str, str, float] | None = None  # the most plausible Korean reading
    western: tuple[str, str, float] | None = None  # the most plausible cp1252 / latin-1 reading
    for name in order:
        if name in seen or (name.startswith(("utf_16", "utf_32")) and name not in pinned):
            continue  # UTF-16/32 only with a BOM or when pinned: without one, any even-length bytes "decode"
        seen.add(name)
        try:
            text = data.decode(name)
        except (UnicodeDecodeError, LookupError):
            continue
        score = _scaled_implausibility(text, name)
        if best is None or score < best[2]:
            best = (text, name, score)
        if name in _KOREAN and (korean is None or score < korean[2]):
            korean = (text, name, score)
        if name in _WESTERN and (western is None or score < western[2]):
            western = (text, name, score)
    if best is not None and korean is not None and best[1] not in _KOREAN and korean[2] == best[2]:
        if _more_korean(korean[0], best[0]):
            return korean
    if best is not None and western is not None and western[2] <= best[2] and _accents(western[0], best[0], best[1]):
        return western
    return best


_WESTERN = frozenset(map(_canon, ("cp1252", "latin_1")))
# what a Western European text holds besides ASCII: accented letters, Spanish and French punctuation, euro
_ACCENTED = frozenset("ÀÁÂÃÄÅÆÇÈÉÊËÌÍÎÏÐÑÒÓÔÕÖØÙÚÛÜÝÞßàáâãäåæçèéêëìíîïðñòóôõöøùúûüýþÿŒœŠšŽžŸ¡¿«»€")


def _accents(western: str, other: str, encoding: str) -> bool:
    """Whether a Western reading (cp1252, latin-1) that scores as well as a double-byte one is the text:
    its only non-ASCII characters are accented letters (``Ça va?``), and each double-byte character of
    the other reading took an ASCII byte as its second half (``ド va?`` in Big5: the ``a`` of ``Ça``). A
    double-byte text has most of its second bytes above 0x7F, so a few characters of it rarely all take
    ASCII ones, and then their Western reading has symbols (Big5's common lead bytes are ``¤``-``¿``).
    Only where the double-byte reading has ASCII words too: a lone ``瞧`` (Big5 ``Á@``) stays Chinese."""
    if not any(map(_ascii_letter, other)) or not all(ch.isascii() or ch in _ACCENTED for ch in western):
        return False  # a double-byte reading with no ASCII word beside it: two bytes alone tell nothing
    try:
        return all(len(b := ch.encode(encoding)) == 2 and b[1] < 0x80 for ch in other if not ch.isascii())
    except UnicodeEncodeError:
        return False


_KOREAN = ("euc_kr", "cp949", "johab", "iso2022_kr")
_SCORED = 65536  # characters scored per reading; a longer text's score is extrapolated from them


def _scaled_implausibility(text: str, encoding: str) -> float:
    """:func:`implausibility` of :data:`_SCORED` characters in 8 windows spread over the text (start to
    end), scaled to the whole: scoring every character of every reading took 5 s for a 2 MB GBK file
    (its cp1252/cp1251/latin-1 readings are 2 M characters each), a minute for the 16 MB ``max_bytes``.
    A legacy encoding is the same all through a file; binary data anywhere still lands in a window."""
    n = len(text)
    if n <= _SCORED:
        return implausibility(text, encoding)
    width = _SCORED // 8
    step = (n - width) // 7
    return sum(implausibility(text[i * step: i * step + width], encoding) for i in range(8)) * n / _SCORED


def _more_korean(korean: str, other: str) -> bool:
    """Whether a Korean reading (three Hangul syllables or more, no Hanja) holds more of Korean's most
    frequent syllables than the other reading holds of Chinese's most frequent characters. One or two
    syllables stay Chinese: ``老`` reads as ``일``, a frequent syllable, and a short word gives no more
    evidence either way (of jieba's 20,000 most frequent words, 2 read as Korean with the minimum, about
    75 without it)."""
    if any(_is_han(ch) for ch in korean) or sum(_is_hangul(ch) for ch in korean) < 3:
        return False
    ko, zh = _frequent("Korean"), _frequent("Chinese")
    return sum(ch in ko for ch in korean) > sum(ch in zh for ch in other)


@functools.cache
def _frequent(language: str) -> frozenset[str]:
    from charset_normalizer.constant import FREQUENCIES

    return frozenset(FREQUENCIES[language])
