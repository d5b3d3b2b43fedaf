"""Names of the fields the text stages derive from a text field: ``txt`` -> ``tokens.json``, ``ids.npy``.

For the ``txt`` field the derived names are bare (``KEY.tokens.json``); for any other text field they
are prefixed with it (``caption`` -> ``caption.tokens.json``), so several text fields never collide.
"""

from __future__ import annotations

from mmprep.errors import Drop
from mmprep.sample import TEXT_EXTS, Sample

TOKENS = "tokens.json"
SENTENCES = "sentences.json"
IDS = "ids.npy"
_TEXT = frozenset(TEXT_EXTS)


def derived(ext: str, suffix: str) -> str:
    return suffix if ext == "txt" else f"{ext}.{suffix}"


def is_text_field(name: str) -> bool:
    """Same test as ``ext_modality(name) == "text"`` (last dotted part, any case), without the loop over
    every modality: the text stages run it on every field of every sample."""
    return name.rpartition(".")[2].lower() in _TEXT


def has_text(sample: Sample) -> bool:
    """``Stage.applies`` for ``reads = ("text",)``: whether any field is a text field."""
    return "txt" in sample or any(map(is_text_field, sample))


def text_fields(sample: Sample, only: list[str] | None) -> list[str]:
    """The sample's text fields, sorted (as ``fields_of(sample, "text")``); only those in ``only`` when given."""
    names = [k for k in sample if k in _TEXT or k.rpartition(".")[2].lower() in _TEXT]
    if len(names) > 1:
        names.sort()
    return [n for n in names if n in only] if only is not None else names


def token_fields(sample: Sample) -> list[str]:
    return sorted(k for k in sample if k == TOKENS or k.endswith("." + TOKENS))


def text_of(sample: Sample, ext: str) -> str:
    value = sample[ext]
    if not isinstance(value, str):
        raise Drop("text.not_decoded", "run text.decode first", field=ext)
    return value


def tokens_of(sample: Sample, name: str) -> dict:
    value = sample[name]
    if not isinstance(value, dict) or not isinstance(value.get("tokens"), list):
        raise Drop("text.bad_tokens", f"{name} is not a tokens document (run text.tokenize)", field=name)
    return value
