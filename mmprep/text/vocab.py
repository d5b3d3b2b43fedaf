"""Vocabularies: per-shard token counts merged into ``vocab.json``, and token -> id lookup.

``vocab.json`` (UTF-8)::

    {"format": "mmprep.vocab/1", "special_tokens": ["<pad>", "<unk>", ...], "unk_token": "<unk>",
     "min_count": 1, "max_size": null, "documents": D, "total_tokens": N, "distinct_tokens": M,
     "vocab": [["<pad>", 0], ["<unk>", 0], ["的", 9120], ...]}

A token's id is its position in ``vocab``: special tokens first (in the order given), then the
tokens by descending count, ties broken by the token string (code-point order), so the same counts
always give the same ids whatever the shard order, worker count or executor.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from pathlib import Path
from typing import Any

FORMAT = "mmprep.vocab/1"


def merge(summaries: list[dict[str, Any]]) -> tuple[Counter[str], int]:
    """Sum the per-shard ``{"counts": {...}, "documents": n}`` summaries."""
    counts: Counter[str] = Counter()
    docs = 0
    for s in summaries:
        counts.update(s.get("counts", {}))
        docs += int(s.get("documents", 0))
    return counts, docs


def build(counts: Counter[str], *, documents: int = 0, min_count: int = 1, max_size: int | None = None,
          special_tokens: list[str] | tuple[str, ...] = (), unk_token: str | None = None) -> dict[str, Any]:
    """The ``vocab.json`` document; ``max_size`` counts the special tokens too."""
    specials = list(dict.fromkeys(special_tokens))
    ranked = sorted((t for t, n in counts.items() if n >= min_count and t not in specials),
                    key=lambda t: (-counts[t], t))
    if max_size is not None:
        ranked = ranked[: max(0, max_size - len(specials))]
    return {
        "format": FORMAT, "special_tokens": specials, "unk_token": unk_token, "min_count": min_count,
        "max_size": max_size, "documents": documents, "total_tokens": sum(counts.values()),
        "distinct_tokens": len(counts), "vocab": [[t, 0] for t in specials] + [[t, counts[t]] for t in ranked],
    }


def write(doc: dict[str, Any], path: str | Path) -> Path:
    """Write atomically (temp file + rename), so a reader never sees half a vocabulary."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    head = {k: v for k, v in doc.items() if k != "vocab"}
    lines = ",\n".join(json.dumps(entry, ensure_ascii=False) for entry in doc["vocab"])
    text = json.dumps(head, ensure_ascii=False)[:-1] + ', "vocab": [\n' + lines + "\n]}\n"
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)
    return path


def load(path: str | Path) -> dict[str, Any]:
    doc = json.loads(Path(path).read_text(encoding="utf-8"))
    if not isinstance(doc, dict) or doc.get("format") != FORMAT or not isinstance(doc.get("vocab"), list):
        raise ValueError(f"{path} is not an mmprep vocab.json ({FORMAT})")
    return doc


def token_to_id(doc: dict[str, Any]) -> dict[str, int]:
    return {entry[0]: i for i, entry in enumerate(doc["vocab"])}


def to_hf_tokenizer(doc: dict[str, Any]) -> Any:
    """A Hugging Face ``tokenizers.Tokenizer`` (WordLevel, whitespace-split pre-tokenizer) with the same ids.

    Fed pre-tokenized words (``encode(words, is_pretokenized=True)``) it gives the ids ``text.ids`` writes.
    """
    from tokenizers import Tokenizer, models, pre_tokenizers

    unk = doc.get("unk_token")
    tok = Tokenizer(models.WordLevel(vocab=token_to_id(doc), unk_token=unk or "[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    specials = doc.get("special_tokens") or []
    if specials:
        tok.add_special_tokens(specials)
    return tok


def count_tars(tars: list[Path], *, lowercase: bool = False) -> dict[str, Any]:
    """A shard summary recounted from the ``*tokens.json`` members of its written tars."""
    import tarfile

    counts: Counter[str] = Counter()
    docs = 0
    for path in tars:
        with tarfile.open(path) as tar:
            for member in tar:
                if member.isfile() and member.name.endswith("tokens.json"):
                    tokens = json.loads(tar.extractfile(member).read()).get("tokens", [])
                    counts.update([t.lower() for t in tokens] if lowercase else tokens)
                    docs += 1
    return {"counts": dict(counts), "documents": docs}


def shard_summaries(out: Path, stage: str, *, lowercase: bool = False) -> list[dict[str, Any]]:
    """Every shard's counts, from its part file in ``OUT/.parts``, in shard order.

    A shard that took some records from the cache or from the previous build did not run them
    through the stages, so its summary is incomplete: it is recounted from its tars instead.
    """
    found = []
    for part in sorted(Path(out, ".parts").glob("[!.]*.json")):
        doc = json.loads(part.read_text(encoding="utf-8"))
        summary = doc.get("summaries", {}).get(stage)
        if summary is None:
            continue
        if doc.get("cached_records") or doc.get("reused_records"):
            summary = count_tars([Path(out, "shards", t) for t in doc.get("tars", [])], lowercase=lowercase)
        found.append(summary)
    return found
