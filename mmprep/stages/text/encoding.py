"""Bytes -> str: a BOM or UTF-8 first, then the most plausible legacy encoding (see :mod:`mmprep.text.detect`)."""

from __future__ import annotations

from mmprep.errors import Drop

_BOMS = ((b"\xef\xbb\xbf", "utf-8-sig"), (b"\xff\xfe\x00\x00", "utf-32"), (b"\x00\x00\xfe\xff", "utf-32"),
         (b"\xff\xfe", "utf-16"), (b"\xfe\xff", "utf-16"))


def decode_text(data: bytes, *, field: str, candidates: tuple[str, ...] | None = None,
                max_implausibility: float = 0.2) -> tuple[str, str]:
    """(text, encoding name); raises Drop(``text.undecodable``) when no encoding explains the bytes.

    Order: a byte-order mark (UTF-8, UTF-16, UTF-32), strict UTF-8, then each of ``candidates``
    (default :data:`mmprep.text.detect.COMMON`) scored for plausibility. A legacy reading whose
    implausibility per character exceeds ``max_implausibility`` counts as undecodable (binary data,
    random bytes, an encoding outside the candidates).
    """
    for bom, name in _BOMS:
        if data.startswith(bom):
            try:
                return data.decode(name), name
            except UnicodeDecodeError as exc:
                raise Drop("text.undecodable", f"{name} BOM but invalid {name}: {exc.reason} at byte {exc.start}",
                           field=field) from None
    try:
        return data.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        pass
    mended = _mostly_utf8(data)
    if mended is not None:
        return mended, "utf-8-replace"
    from mmprep.text.detect import best_decoding

    best = best_decoding(data, candidates=candidates)
    if best is None:
        raise Drop("text.undecodable", "no candidate encoding decodes these bytes", field=field)
    text, encoding, score = best
    if score > max_implausibility * max(len(text), 1):
        raise Drop("text.undecodable", f"best reading ({encoding}) is implausible: {score / len(text):.2f} per char",
                   field=field)
    return text, encoding


def _mostly_utf8(data: bytes) -> str | None:
    """UTF-8 with a stray bad byte or a character cut at the end (a truncated file) is still UTF-8: the
    text with U+FFFD for the bad bytes, when those are few and well-formed multi-byte characters
    outnumber them many times (a legacy encoding read as UTF-8 fails at nearly every non-ASCII
    character). Else None: a legacy reading of the whole would turn every character into mojibake."""
    text = data.decode("utf-8", errors="replace")
    bad = text.count("\ufffd")
    non_ascii = len(text) - len(text.encode("ascii", "ignore")) - bad
    return text if bad <= max(2, len(text) // 200) and non_ascii >= 8 * bad else None
