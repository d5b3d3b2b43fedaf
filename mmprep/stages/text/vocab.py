"""``text.vocab`` (corpus-wide count -> OUT/vocab.json) and ``text.ids`` (tokens -> ``ids.npy``).

Ids need a vocabulary fixed before the shard is written, and a vocabulary counted in this build is
only known after the last shard. So ``text.ids`` takes a vocabulary from a file: ``vocab.json``
from an earlier build (the two-pass flow; with ``text.tokenize`` ``cache: true`` and a shared
``--cache`` the second pass skips tokenization) or a Hugging Face ``tokenizer.json``.
"""

from __future__ import annotations

import logging
from collections import Counter
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import Field

from mmprep.errors import ConfigError, Drop
from mmprep.sample import Sample
from mmprep.stage import Stage, StageConfig, register
from mmprep.stages.text.fields import IDS, TOKENS, derived, text_fields, token_fields, tokens_of
from mmprep.text import vocab as vocablib

log = logging.getLogger(__name__)
DEFAULT_SPECIALS = ["<pad>", "<unk>", "<bos>", "<eos>"]


# JSON files the build or other stages write under OUT (stats, the alignment report); hidden ones too
_BUILD_FILES = frozenset({"stats.json", "alignment_report.json"})


@register
class TextVocab(Stage):
    """Count the tokens of every tokens field; after the build, write ``OUT/vocab.json``.

    Each shard's counts are kept in its part file, so resumed and Dask-built shards count alike,
    and ``mmprep vocab OUT`` can re-cut the vocabulary (other min_count / max_size) without a rebuild.
    A shard whose records partly came from the cache (they skip every stage) is recounted from the
    ``tokens.json`` members of its tars, so put this stage after the last one that changes tokens.
    """

    name = "text.vocab"
    reads = (TOKENS,)
    writes = ()

    class Config(StageConfig):
        min_count: int = Field(1, ge=1, description="Tokens seen fewer times are left out.")
        max_size: int | None = Field(None, ge=1, description="Most tokens kept, special tokens included.")
        special_tokens: list[str] = Field(DEFAULT_SPECIALS, description="First ids, in this order.")
        unk_token: str | None = Field("<unk>", description="Token that text.ids uses for unknown tokens.")
        lowercase: bool = Field(False, description="Count tokens lowercased.")
        output: str = Field("vocab.json", pattern=r"^[^/\\]+\.json$", description="File name under OUT.")
        tokenizer_json: bool = Field(False, description="Also write OUT/tokenizer.json (HF WordLevel, same ids).")

    def __init__(self, config: StageConfig):
        super().__init__(config)
        self.counts: Counter[str] = Counter()
        self.documents = 0

    def check(self) -> None:
        cfg = self.config
        if cfg.unk_token is not None and cfg.unk_token not in cfg.special_tokens:
            raise ConfigError("unk_token", f"{cfg.unk_token!r} must be one of special_tokens")
        specials = len(dict.fromkeys(cfg.special_tokens))
        if cfg.max_size is not None and cfg.max_size < specials:  # the vocabulary would hold no token at all
            raise ConfigError("max_size", f"{cfg.max_size} is below the {specials} special tokens it includes")
        taken = _BUILD_FILES | ({"tokenizer.json"} if cfg.tokenizer_json else set())
        if cfg.output in taken or cfg.output.startswith("."):  # one file would silently overwrite the other
            raise ConfigError("output", f"{cfg.output!r} is a file the build writes itself; name the vocabulary "
                                        "otherwise (e.g. vocab.json)")

    def applies(self, sample: Sample) -> bool:
        return bool(token_fields(sample))

    def begin_shard(self) -> None:
        self.counts = Counter()
        self.documents = 0

    def process(self, sample: Sample) -> Sample:
        for name in token_fields(sample):
            tokens = tokens_of(sample, name)["tokens"]
            self.counts.update([t.lower() for t in tokens] if self.config.lowercase else tokens)
            self.documents += 1
        return sample

    def end_shard(self) -> dict[str, Any]:
        return {"counts": dict(self.counts), "documents": self.documents}

    def build(self, summaries: list[dict[str, Any]]) -> dict[str, Any]:
        cfg = self.config
        counts, docs = vocablib.merge(summaries)
        return vocablib.build(counts, documents=docs, min_count=cfg.min_count, max_size=cfg.max_size,
                              special_tokens=cfg.special_tokens, unk_token=cfg.unk_token)

    def reports(self) -> tuple[str, ...]:
        return (self.config.output, "tokenizer.json") if self.config.tokenizer_json else (self.config.output,)

    def creates(self) -> tuple[tuple[str, str], ...]:
        return tuple(zip(("output", "tokenizer_json"), self.reports(), strict=False))

    def finalize(self, summaries: list[dict[str, Any]], out_dir: Any) -> None:
        # Shards that replayed records from the cache or the previous build are recounted from their tars.
        complete = vocablib.shard_summaries(Path(out_dir), self.name, lowercase=self.config.lowercase)
        doc = self.build(complete if len(complete) == len(summaries) else summaries)
        path = vocablib.write(doc, Path(out_dir) / self.config.output)
        if self.config.tokenizer_json:
            vocablib.to_hf_tokenizer(doc).save(str(Path(out_dir) / "tokenizer.json"))
        log.info("vocabulary: %d entries from %d tokens -> %s", len(doc["vocab"]), doc["total_tokens"], path)


@register
class TextIds(Stage):
    """Token ids -> ``ids.npy`` (``shape=(n,)``, int32 unless ``dtype``), from ``vocab.json`` or ``tokenizer.json``.

    With ``vocab``: the ids of ``tokens.json``'s tokens (unknown ones -> ``unk_token``, or skipped
    when the vocabulary has none). With ``tokenizer``: a Hugging Face tokenizer encodes the text
    field (``input: text``) or the tokens as pre-tokenized words (``input: tokens``). Reason code
    ``text.no_ids`` when the result is empty.
    """

    name = "text.ids"
    reads = ("text", TOKENS)
    writes = (IDS,)
    batched = True

    class Config(StageConfig):
        vocab: str | None = Field(None, min_length=1, description="An mmprep vocab.json (e.g. OUT/vocab.json of a "
                                                                  "first pass).")
        tokenizer: str | None = Field(None, min_length=1, description="A Hugging Face tokenizers tokenizer.json file.")
        input: Literal["tokens", "text"] = Field("tokens", description="What the tokenizer encodes; vocab "
                                                                       "needs tokens.")
        add_special_tokens: bool = Field(False, description="bos/eos (vocab) or the tokenizer's post-processor.")
        bos_token: str = "<bos>"
        eos_token: str = "<eos>"
        lowercase: bool = Field(False, description="Lowercase tokens before lookup (match text.vocab lowercase).")
        dtype: Literal["int32", "int64", "uint16", "uint32"] = "int32"

    def __init__(self, config: StageConfig):
        super().__init__(config)
        self.ids: dict[str, int] | None = None
        self.hf: Any = None
        self.unk: int | None = None

    def check(self) -> None:
        cfg = self.config
        if (cfg.vocab is None) == (cfg.tokenizer is None):
            raise ConfigError("vocab", "give exactly one of vocab (vocab.json) or tokenizer (tokenizer.json)")
        if cfg.vocab is not None and cfg.input != "tokens":
            raise ConfigError("input", "a vocab.json maps tokens; use input: tokens (after text.tokenize)")
        path = cfg.vocab or cfg.tokenizer
        key = "vocab" if cfg.vocab else "tokenizer"
        if not Path(path).is_file():
            raise ConfigError(key, f"{path} not found (build the vocabulary first: text.vocab writes OUT/vocab.json)")
        try:
            self.setup()
        except Exception as exc:  # noqa: BLE001 - tokenizers raises plain Exception, json ValueError
            raise ConfigError(key, f"cannot load {path}: {exc}") from None
        size = len(self.ids) if self.ids is not None else self.hf.get_vocab_size(with_added_tokens=True)
        if size - 1 > np.iinfo(cfg.dtype).max:
            raise ConfigError("dtype", f"{size} ids do not fit {cfg.dtype}")
        if self.ids is not None and cfg.add_special_tokens:
            for tok in (cfg.bos_token, cfg.eos_token):
                if tok not in self.ids:
                    raise ConfigError("add_special_tokens", f"{tok!r} is not in {path}")

    def setup(self) -> None:
        cfg = self.config
        if cfg.vocab:
            doc = vocablib.load(cfg.vocab)
            self.ids = vocablib.token_to_id(doc)
            unk = doc.get("unk_token")
            self.unk = self.ids.get(unk) if unk else None
        else:
            from tokenizers import Tokenizer

            self.hf = Tokenizer.from_file(cfg.tokenizer)

    def applies(self, sample: Sample) -> bool:
        return bool(token_fields(sample)) if self.config.input == "tokens" else super().applies(sample)

    def _inputs(self, sample: Sample) -> list[tuple[str, Any]]:
        """(output field, tokens list or text) per field to encode."""
        if self.config.input == "text":
            return [(derived(ext, IDS), sample[ext]) for ext in text_fields(sample, None)
                    if isinstance(sample[ext], str)]
        out = []
        for name in token_fields(sample):
            tokens = tokens_of(sample, name)["tokens"]
            out.append((name[: -len(TOKENS)] + IDS, [t.lower() for t in tokens] if self.config.lowercase else tokens))
        return out

    def _lookup(self, tokens: list[str]) -> list[int]:
        ids, unk = self.ids, self.unk
        out = [ids.get(t, unk) for t in tokens]
        out = [i for i in out if i is not None]
        if self.config.add_special_tokens:
            out = [ids[self.config.bos_token], *out, ids[self.config.eos_token]]
        return out

    def process(self, sample: Sample) -> Sample:
        return self.process_batch([sample])[0]

    def process_batch(self, samples: list[Sample]) -> list[Any]:
        if self.ids is None and self.hf is None:
            self.setup()
        jobs = [(n, name, value) for n, s in enumerate(samples) for name, value in self._inputs(s)]
        if self.hf is not None and jobs:
            pre = self.config.input == "tokens"
            encs = self.hf.encode_batch([v for _, _, v in jobs], is_pretokenized=pre,
                                        add_special_tokens=self.config.add_special_tokens)
            results = [e.ids for e in encs]
        else:
            results = [self._lookup(v) for _, _, v in jobs]
        out: list[Any] = list(samples)
        for (n, name, _), ids in zip(jobs, results, strict=True):
            if isinstance(out[n], Drop):
                continue
            if not ids:
                out[n] = Drop("text.no_ids", "no ids (every token unknown, or no tokens)", field=name)
                continue
            samples[n][name] = np.asarray(ids, dtype=self.config.dtype)
        return out
