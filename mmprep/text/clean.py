"""Cleaning functions for decoded text: control characters, width, markup, URLs, whitespace.

Each takes and returns ``str``; the stage composes them in a fixed order (see ``text.normalize``).
"""

from __future__ import annotations

import html
import re
import unicodedata

# C0 and C1 controls and DEL, except tab, newline and carriage return; also zero-width/bidi marks
# that only hide things, and lone surrogates (they cannot be written as UTF-8).
CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u200b\u200e\u200f\u202a-\u202e\u2066-\u2069\ufeff"
                     "\ud800-\udfff]")
URL = re.compile(r"(?:https?://|ftp://|www\.)[^\s<>\"'，。、）)]+", re.IGNORECASE)
# Bounded repeats keep every pattern linear in the text: with an open-ended one, each of many openers
# that never close ("a." * 30000 + "@", "[a](" * 20000, "*a " * 20000) scanned to the end of the
# text, and one 160 KB caption took 7-12 s. An e-mail's local part is at most 64 characters (RFC 5321);
# link targets over 2,000 and italic spans over 300 characters are left as they are.
EMAIL = re.compile(r"\b[\w.+-]{1,64}@[\w-]{1,63}\.[\w.-]{1,253}\b")
_OPENER = re.compile(r"<(?:(script|style)\b|(!--)|[A-Za-z/!])", re.IGNORECASE)
_CLOSER = {name: re.compile(rf"</{name}\s*>", re.IGNORECASE) for name in ("script", "style")}
_MD = [
    (re.compile(r"```.*?```", re.DOTALL), " "),  # fenced code
    (re.compile(r"!\[([^\]]{0,1000})\]\([^)]{0,2000}\)"), r"\1"),  # image -> alt text
    (re.compile(r"\[([^\]]{1,1000})\]\([^)]{0,2000}\)"), r"\1"),  # link -> its text
    (re.compile(r"^\s{0,3}#{1,6}\s+", re.MULTILINE), ""),  # headings
    (re.compile(r"^\s{0,3}>\s?", re.MULTILINE), ""),  # block quotes
    (re.compile(r"^\s*(?:[-*+]|\d+[.)])\s+", re.MULTILINE), ""),  # list markers
    (re.compile(r"(\*\*|__)(.+?)\1"), r"\2"),  # bold
    (re.compile(r"(?<![\w*])\*(?!\s)(.{1,300}?)(?<!\s)\*(?![\w*])"), r"\1"),  # italic (up to 300 characters)
    (re.compile(r"`([^`]+)`"), r"\1"),  # inline code
]
_SPACE = re.compile(r"[^\S\n]+")
_NEWLINES = re.compile(r"\s*\n\s*")
_ALL_SPACE = re.compile(r"\s+")


def count_controls(text: str) -> int:
    return len(CONTROL.findall(text)) if CONTROL.search(text) else 0


# Controls that separate lines or words (VT, FF, NEL, the file/group/record/unit separators: Python's
# str.splitlines and str.isspace agree): removing them glued the words on either side ("page\x0cNext"
# from a PDF became "pageNext"), so they become a line break or a space instead.
_BREAKS = {ord(c): "\n" for c in "\x0b\x0c\x1c\x1d\x1e\x85"} | {0x1F: " "}


def strip_controls(text: str) -> str:
    """Control characters removed; the ones that break lines or words (:data:`_BREAKS`) become whitespace."""
    return CONTROL.sub("", text.translate(_BREAKS))


def strip_html(text: str) -> str:
    """Tags, comments, scripts and styles removed (each becomes a space); entities (``&amp;``,
    ``&#20013;``) unescaped. A script, style or comment without its end loses only its opening tag.

    A scan rather than one regular expression: ``<script.*?</script>`` and ``<[^>]*>`` looked for the
    end of every unclosed opener up to the end of the text (quadratic: 12 s for 20,000 ``<script>``).
    Once an end is known to be missing after some point, no later opener searches for it again."""
    out: list[str] = []
    pos = 0
    missing: set[str] = set()  # ends absent from the text after the last search: ">", "-->", "script"...
    n = len(text)
    while pos < n:
        m = _OPENER.search(text, pos)
        if m is None:
            break
        end = -1
        block = (m.group(1) or "").lower() or ("--" if m.group(2) else "")
        if block and block not in missing:
            if block == "--":
                k = text.find("-->", m.end())
                end = k + 3 if k >= 0 else -1
            else:
                close = _CLOSER[block].search(text, m.end())
                end = close.end() if close else -1
            if end < 0:
                missing.add(block)
        if end < 0 and ">" not in missing:  # a plain tag: up to the next '>'
            k = text.find(">", m.start() + 1)
            end = k + 1 if k >= 0 else -1
            if end < 0:
                missing.add(">")
        if end < 0:
            out.append(text[pos:m.start() + 1])
            pos = m.start() + 1
            continue
        out.append(text[pos:m.start()])
        out.append(" ")
        pos = end
    out.append(text[pos:])
    return html.unescape("".join(out))


def strip_markdown(text: str) -> str:
    """Markdown markup removed, keeping link texts and image alt texts."""
    for pattern, repl in _MD:
        text = pattern.sub(repl, text)
    return text


def strip_urls(text: str) -> str:
    return EMAIL.sub(" ", URL.sub(" ", text))


# Full-width punctuation that NFKC would turn into ASCII but that belongs to Chinese text: ，！？：；（）～
CJK_PUNCT = "\uff01\uff08\uff09\uff0c\uff1a\uff1b\uff1f\uff5e"
_HALF_ALL = {o: o - 0xFEE0 for o in range(0xFF01, 0xFF5F)} | {0x3000: 0x20}
_HALF_KEEP_PUNCT = {o: c for o, c in _HALF_ALL.items() if chr(o) not in CJK_PUNCT}
# NFKC with the CJK punctuation protected: swap it for private-use code points (which NFKC leaves
# alone) and back. U+F0000.. (plane 15) is never produced by a decoder from real text.
_PROTECT = {ord(ch): 0xF0000 + i for i, ch in enumerate(CJK_PUNCT)}
_UNPROTECT = {v: k for k, v in _PROTECT.items()}


def to_halfwidth(text: str, *, keep_cjk_punctuation: bool = True) -> str:
    """Full-width ASCII (``ＡＢＣ１２３``) and the ideographic space -> ASCII, via ``str.translate`` (C speed).

    With ``keep_cjk_punctuation`` the punctuation of Chinese text (:data:`CJK_PUNCT`) stays full width.
    """
    return text.translate(_HALF_KEEP_PUNCT if keep_cjk_punctuation else _HALF_ALL)


def normalize_unicode(text: str, form: str, *, keep_cjk_punctuation: bool = False) -> str:
    if text.isascii():
        return text  # every normalization form leaves ASCII unchanged
    if keep_cjk_punctuation and form in ("NFKC", "NFKD"):
        return unicodedata.normalize(form, text.translate(_PROTECT)).translate(_UNPROTECT)
    return unicodedata.normalize(form, text)


def collapse_whitespace(text: str, *, keep_newlines: bool = False) -> str:
    if keep_newlines:
        return _NEWLINES.sub("\n", _SPACE.sub(" ", text)).strip()
    return _ALL_SPACE.sub(" ", text).strip()

