"""Bytes -> str: UTF-8 first (with or without BOM), then a detector (charset-normalizer)."""

from __future__ import annotations

from mmprep.errors import Drop


def decode_text(data: bytes, *, field: str) -> tuple[str, str]:
    """(text, encoding name); raises Drop(``text.undecodable``) when no encoding explains the bytes."""
    if data.startswith(b"\xef\xbb\xbf"):
        return data[3:].decode("utf-8", errors="strict"), "utf-8-sig"
    try:
        return data.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        pass
    from charset_normalizer import from_bytes

    best = from_bytes(data).best()
    if best is None:
        raise Drop("text.undecodable", "no encoding explains these bytes", field=field)
    return str(best), best.encoding
