"""Text embeddings from a sentence-transformers model directory: mean pooling, optional L2 norm.

The directory is loaded with ``transformers`` (tokenizer + encoder) from local files only, with the
hub switched off; pooling and normalization are done here so they are explicit and testable. The
result equals ``SentenceTransformer(dir).encode(texts)`` for mean-pooling models (within 1e-5).

Batching is bucketed by token length: all inputs of a call are sorted by length (longest first) and
each batch is padded only to its own longest member, so short captions do not pay for long ones.

On CPU the model is compute-bound: its matrix products already run near the cores' peak, so the only
gains left are fewer padded tokens and less time outside the matrix products. A CPU batch therefore
holds texts within 1/16 of its longest (equal lengths for captions under 32 tokens), at most
``CPU_BATCH_TOKENS`` padded tokens (activations stay cache-sized), and whole batches run concurrently,
one Python thread per torch thread, each op single-threaded: the small per-op parallel regions
(attention, layer norm, GELU) scale poorly over cores, whole batches do (1,024 captions, 2 cores:
2.61 s -> 2.37 s). On CUDA padding is nearly free and big batches keep the GPU busy: a batch holds
``batch_size`` texts within a factor of two of its longest, run one after the other.

Texts longer than the model limit are truncated and noted (``{"truncated": True, "tokens": n}``); a
text that tokenizes to special tokens alone (zero-width spaces, control characters: the tokenizer
removes them) is dropped as ``embed.empty_text``, as a blank one is.
"""

from __future__ import annotations

import json
import os
import time
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from mmprep.embed.base import Encoder, to_device
from mmprep.embed.identity import model_hash, resolve_text_model
from mmprep.errors import ConfigError, Drop

CPU_BATCH_TOKENS = 1024  # padded tokens per model call on CPU (measured: 512 and 4096 are both slower)


def _offline() -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def _read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


class TextEncoder(Encoder):
    modality = "text"
    kind = "sentence-transformers"

    def __init__(self, *, model: str | None, device: str, batch_size: int, normalize: bool | None = None,
                 max_tokens: int | None = None):
        path = resolve_text_model(model)
        modules = _read_json(path / "modules.json")
        types = [m.get("type", "") for m in modules] if isinstance(modules, list) else []
        pooling = _read_json(path / "1_Pooling" / "config.json")
        if pooling and not pooling.get("pooling_mode_mean_tokens", True):
            raise ConfigError("model", f"{path}: only mean pooling is supported, the model declares {pooling}")
        limit = _read_json(path / "sentence_bert_config.json").get("max_seq_length") or 512
        self.max_tokens = min(max_tokens or limit, limit)
        if normalize is None:  # follow the model's own pipeline (a Normalize module) unless told
            normalize = any(t.endswith("Normalize") for t in types)
        super().__init__(model=str(path), model_hash=model_hash(path), device=device, batch_size=batch_size,
                         normalize=normalize, preprocessing={"max_tokens": self.max_tokens, "pooling": "mean"})
        _offline()
        import torch
        from transformers import AutoModel
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()

        self.tokenizer = load_tokenizer(path)
        try:
            self.net = AutoModel.from_pretrained(str(path), local_files_only=True).eval().to(device)
        except Exception as exc:  # noqa: BLE001 - safetensors, torch and transformers raise their own types
            reason = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else ""
            raise ConfigError("model", f"{path} does not load as a transformers model: "
                              f"{type(exc).__name__}: {reason}") from None
        check_max_tokens(self.tokenizer.num_special_tokens_to_add(), self.max_tokens)
        if getattr(self.net, "pooler", None) is not None:
            self.net.pooler = None  # the [CLS] pooler head: unused by mean pooling, one matmul per batch saved
        self.dim = int(self.net.config.hidden_size)
        cpu = device == "cpu"
        self.pad_slack = 1 / 16 if cpu else 1 / 2  # a text joins a batch if it is this close to its longest
        self.batch_tokens = CPU_BATCH_TOKENS if cpu else None
        self.pool = _batch_pool(torch.get_num_threads()) if cpu else None
        self.pad_id = self.tokenizer.pad_token_id or 0
        # [CLS], [SEP], padding: a text of these alone has no content ([UNK] stands for some)
        self.specials = set(self.tokenizer.all_special_ids) - {self.tokenizer.unk_token_id}
        self.types = "token_type_ids" in self.tokenizer.model_input_names
        self.torch = torch

    def prepare(self, value: Any) -> str:
        if isinstance(value, bytes):
            try:
                value = value.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise Drop("embed.undecodable", f"text is not UTF-8: {exc}") from None
        if not isinstance(value, str):
            raise Drop("embed.not_text", f"expected text, got {type(value).__name__}")
        if not value.strip():
            raise Drop("embed.empty_text", "the text is empty")
        return value

    def tokenize(self, texts: list[str]) -> tuple[list[list[int]], list[dict[str, Any] | None]]:
        """Token ids per text, cut to ``max_tokens``; a note for each text that was longer."""
        # One pass at max+1 tells which texts exceed the limit; only those are tokenized again.
        ids = self.tokenizer(texts, truncation=True, max_length=self.max_tokens + 1)["input_ids"]
        notes: list[dict[str, Any] | None] = [None] * len(texts)
        long = [i for i, row in enumerate(ids) if len(row) > self.max_tokens]
        if long:
            cut = self.tokenizer([texts[i] for i in long], truncation=True, max_length=self.max_tokens)["input_ids"]
            full = self.tokenizer([texts[i] for i in long], truncation=False, verbose=False)["input_ids"]
            for i, row, whole in zip(long, cut, full, strict=True):
                ids[i] = row
                notes[i] = {"truncated": True, "tokens": len(whole), "max_tokens": self.max_tokens}
        return ids, notes

    def buckets(self, lengths: list[int]) -> list[list[int]]:
        """Indices in batches, longest first. A text joins the open batch if the batch has fewer than
        ``batch_size`` texts, the text is within ``pad_slack`` of the batch's longest, and (CPU) the batch
        stays within ``batch_tokens`` padded tokens; otherwise it opens the next batch."""
        order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
        limit = self.batch_tokens or float("inf")
        batches: list[list[int]] = []
        for i in order:
            if batches:
                batch = batches[-1]
                width = lengths[batch[0]]
                if (len(batch) < self.batch_size and width - lengths[i] <= int(width * self.pad_slack)
                        and (len(batch) + 1) * width <= limit):
                    batch.append(i)
                    continue
            batches.append([i])
        return batches

    def encode(self, prepared: list[str]) -> tuple[np.ndarray, list[dict[str, Any] | None]]:
        out = np.zeros((len(prepared), self.dim), dtype=np.float32)
        if not prepared:
            return out, []
        ids, notes = self.tokenize(prepared)
        texts = []  # those with a token of their own: the others would all embed to one vector
        for i, row in enumerate(ids):
            if all(t in self.specials for t in row):
                notes[i] = {"drop": Drop("embed.empty_text", "no token but the model's special ones (the text is "
                                                             "only invisible or control characters)")}
            else:
                texts.append(i)
        batches = [[texts[j] for j in batch] for batch in self.buckets([len(ids[i]) for i in texts])]
        run = partial(self._batch, ids)
        for idx, pooled in zip(batches, self.pool.map(run, batches) if self.pool else map(run, batches),
                               strict=True):
            out[idx] = pooled
        self.computed += len(texts)
        return self.finish(out), notes

    def _batch(self, ids: list[list[int]], idx: list[int]) -> np.ndarray:
        """Mean-pooled hidden states of the texts ``idx``, ``float32 shape=(len(idx), dim)``."""
        torch = self.torch
        width = len(ids[idx[0]])
        tok = np.full((len(idx), width), self.pad_id, dtype=np.int64)
        mask = np.zeros((len(idx), width), dtype=np.int64)
        for r, i in enumerate(idx):
            tok[r, : len(ids[i])] = ids[i]
            mask[r, : len(ids[i])] = 1
        with torch.inference_mode():  # thread-local: entered in the thread that runs the model
            inputs = {"input_ids": to_device(torch.from_numpy(tok), self.device)}
            padded = not mask.all()
            if padded:  # no mask at all lets attention take its unmasked path (equal-length batches)
                inputs["attention_mask"] = to_device(torch.from_numpy(mask), self.device)
            if self.types:
                inputs["token_type_ids"] = torch.zeros_like(inputs["input_ids"])
            hidden = self.net(**inputs).last_hidden_state
            if padded:
                m = inputs["attention_mask"].unsqueeze(-1).to(hidden.dtype)
                pooled = (hidden * m).sum(1) / m.sum(1).clamp(min=1e-9)
            else:
                pooled = hidden.mean(1)
            return pooled.float().cpu().numpy()


def load_tokenizer(path: Path) -> Any:
    _offline()
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(str(path), local_files_only=True)
    except Exception as exc:  # noqa: BLE001 - tokenizers and transformers raise their own types
        reason = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else ""
        raise ConfigError("model", f"{path} does not load as a transformers tokenizer: "
                          f"{type(exc).__name__}: {reason}") from None


def check_max_tokens(specials: int, max_tokens: int) -> None:
    """``max_tokens`` counts the ``specials`` special tokens ([CLS], [SEP]) too. Below their count plus one the
    tokenizer cannot cut a text to the limit at all (it warns and returns it whole, and a long text then
    overflows the position embeddings mid-run), so such a limit is a configuration error."""
    least = specials + 1
    if max_tokens < least:
        raise ConfigError("max_tokens", f"{max_tokens} leaves no room for text: the tokenizer adds "
                          f"{least - 1} special tokens to every input; use at least {least}")


def preflight(path: Path, max_tokens: int | None) -> None:
    """What a pipeline's pre-flight check can prove without importing torch or transformers (~0.2 s, so the
    driver can still fork its workers): ``tokenizer.json`` loads, ``max_tokens`` leaves room for text, and
    every ``*.safetensors`` file's header reads (a broken weights file otherwise failed every worker batch)."""
    from safetensors import safe_open
    from tokenizers import Tokenizer

    vocab = path / "tokenizer.json"
    if vocab.is_file():
        try:
            specials = Tokenizer.from_file(str(vocab)).num_special_tokens_to_add(False)
        except Exception as exc:  # noqa: BLE001 - tokenizers raises its own exception type
            raise ConfigError("model", f"{vocab} does not load as a tokenizer: {exc}") from None
        if max_tokens is not None:
            check_max_tokens(specials, max_tokens)
    for weights in sorted(path.glob("*.safetensors")):
        try:
            with safe_open(str(weights), framework="np") as fh:
                fh.keys()
        except Exception as exc:  # noqa: BLE001 - safetensors raises its own exception type
            raise ConfigError("model", f"{weights} does not load as safetensors weights: {exc}") from None


def _one_thread() -> None:
    import torch

    torch.get_num_threads()  # first call in a thread initializes its count from the process default...
    torch.set_num_threads(1)  # ...which this then overrides for this thread (OpenMP and MKL counts are per thread)


def _batch_pool(threads: int) -> ThreadPoolExecutor | None:
    """``threads`` workers whose torch ops are single-threaded, or None for one thread. Setting the count
    also sets the default new threads inherit, so the caller's count is restored once all have started."""
    import torch

    if threads <= 1:
        return None
    pool = ThreadPoolExecutor(threads, thread_name_prefix="mmprep-embed", initializer=_one_thread)
    list(pool.map(time.sleep, [0.02] * threads))  # all workers started (and set to one thread)
    torch.set_num_threads(threads)
    return pool
