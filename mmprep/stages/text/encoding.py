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
    from mmprep.text.detect import best_decoding

    best = best_decoding(data, candidates=candidates)
    if best is None:
        raise Drop("text.undecodable", "no candidate encoding decodes these bytes", field=field)
    text, encoding, score = best
    if score > max_implausibility * max(len(text), 1):
        raise Drop("text.undecodable", f"best reading ({encoding}) is implausible: {score / len(text):.2f} per char",
                   field=field)
    return text, encoding
