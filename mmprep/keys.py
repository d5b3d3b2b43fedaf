"""Sample keys that are safe as tar member names and unambiguous for WebDataset readers.

WebDataset splits a member name at the first dot of its base name (``a/b/x.jpg`` -> key ``a/b/x``,
field ``jpg``), so a key must not contain dots; it must not climb out of the archive (``..``) or be
absolute. Sanitizing is deterministic: the same path always gives the same key.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata

_UNSAFE = re.compile(r"[^\w\-]+", re.UNICODE)


# a key that sanitizing leaves as it is: ASCII word characters and dashes, no part starting or ending with "_"
_CLEAN = re.compile(r"[A-Za-z0-9-](?:[A-Za-z0-9_-]*[A-Za-z0-9-])?(?:/[A-Za-z0-9-](?:[A-Za-z0-9_-]*[A-Za-z0-9-])?)*")


def sanitize_key(raw: str) -> str:
    """``/data/a/../b/x.y z`` -> ``data/b/x_y_z``: no dots, no absolute path, no empty parts."""
    if isinstance(raw, str) and _CLEAN.fullmatch(raw):
        return raw
    text = unicodedata.normalize("NFC", str(raw)).replace("\\", "/")
    parts: list[str] = []
    for part in text.split("/"):
        if part in ("", ".", ".."):
            continue
        clean = _UNSAFE.sub("_", part).strip("_")
        if clean:
            parts.append(clean)
    if not parts:
        return "_" + _short_hash(text)
    return "/".join(parts)


_SAFE = re.compile(r"[\w-]+(?:/[\w-]+)*", re.UNICODE)


def is_safe_key(key: str) -> bool:
    """True for a key that is safe as a tar member name: word characters and dashes in non-empty
    ``/``-separated parts (no dots, so no ``..``; not absolute). Every sanitized key is one, and so is
    every :func:`child_key` of one."""
    return isinstance(key, str) and _SAFE.fullmatch(key) is not None and key == unicodedata.normalize("NFC", key)


def child_key(parent: str, kind: str, index: int) -> str:
    """The key of a fan-out's child sample: ``a/b/x`` -> ``a/b/x/_seg0003``. No corpus key has a part
    that starts with ``_`` (sanitizing strips it; the one exception, a name with nothing left, becomes
    ``_`` and 8 hex digits, and never has a parent), so a child never takes a real file's key."""
    return f"{parent}/_{kind}{index:04d}"


def _short_hash(text: str) -> str:
    # surrogatepass: a name with undecodable bytes (lone surrogates in Python) hashes like any other
    return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=4).hexdigest()


def unique_keys(raws: list[str]) -> dict[str, str]:
    """Map each raw name to a sanitized key, suffixing a short hash of the raw name where two collide.

    Which of the colliding names keeps the plain key goes by rank, then by raw name:

    1. a name that is its own key (``a_b``): it keeps the plain key whatever else is in the corpus;
    2. a name whose only change is dots to ``_`` (``a.b``, ``IMG.2023``), the common unclean name;
    3. any other (``a b``, ``a..b``, ``名字``).

    So adding ``a b`` next to ``a.b`` leaves ``a.b``'s key ``a_b``. What can still move: a new name
    that ranks higher, or ranks the same and sorts first, takes the plain key, and the name that had
    it gets the suffix (``a.b`` added next to a lone ``a b``; ``a b`` next to ``a  b``). A suffixed
    key depends only on its raw name, so that name is the only one that moves.
    """
    clean = {raw: sanitize_key(raw) for raw in raws}
    if len(set(clean.values())) == len(clean):
        return clean  # no collision: every name keeps its sanitized key
    out: dict[str, str] = {}
    taken: set[str] = set()
    for raw in sorted(clean, key=lambda r: (_rank(r, clean[r]), r)):
        key = clean[raw]
        if key in taken:
            key = f"{key}-{_short_hash(raw)}"
            while key in taken:  # a clean name that looks like a suffixed key: astronomically rare
                key = f"{key}-{_short_hash(key)}"
        taken.add(key)
        out[raw] = key
    return out


def _rank(raw: str, key: str) -> int:
    if raw == key:
        return 0
    return 1 if raw.replace(".", "_") == key else 2
