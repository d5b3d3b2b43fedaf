"""``mmprep embed``: embeddings of one field of a finished build, as sidecar shards.

Layout, for field ``txt`` embedded under name ``txt_emb``::

    OUT/embeddings/txt_emb/meta.json          model identity, dim, dtype, normalization, counts,
                                              seconds, and one entry per completed shard
    OUT/embeddings/txt_emb/errors.jsonl       one line per dropped or truncated input
    OUT/embeddings/txt_emb/NAME-000000.tar    same file name as OUT/shards/NAME-000000.tar

Each sidecar holds, for every key of its main shard and in the same order, either
``KEY.txt_emb.npy`` (``shape=(dim,)``, float32 or float16, ``allow_pickle=False``) or, when the input
could not be embedded, ``KEY.txt_emb.drop.json`` with the reason code. Sidecars are written under a
temporary name and renamed (:class:`~mmprep.shardwriter.ShardWriter`).

A field that no sample of ``OUT/index.parquet`` has is a configuration error before any work. A
complete sidecar where every input was dropped (a field of the wrong modality, captions all blank)
holds no name: the next run of another model or field takes it over. ``mmprep embed`` removes such a
sidecar and fails as a configuration error too (:meth:`SidecarJob.discard_empty`).

Reruns: a shard whose meta entry matches the main shard's size and mtime and the model identity is
skipped; inside a shard, each input is looked up in the content cache by
``hash(identity, input bytes)`` first. ``computed`` counts inputs that went through the model.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mmprep.cache import Cache, digest
from mmprep.codecs import npy_bytes
from mmprep.embed.base import Encoder, unstorable
from mmprep.embed.identity import short_id
from mmprep.embed.progress import Bar
from mmprep.embed.shards import check_field, main_shards, read_field
from mmprep.errors import ConfigError, Drop
from mmprep.shardwriter import ShardWriter

log = logging.getLogger("mmprep.embed")
CHUNK = 1024  # inputs prepared and encoded together (length buckets form inside a chunk)


@dataclass
class EmbedOptions:
    field: str
    name: str | None = None
    dtype: str = "float32"
    cache_dir: str | None = None  # default OUT/.cache; "" disables the cache
    force: bool = False
    progress: bool = True


@dataclass
class EmbedResult:
    name: str
    directory: str
    samples: int = 0
    embedded: int = 0
    computed: int = 0
    cached: int = 0
    dropped: int = 0
    truncated: int = 0
    shards_done: int = 0
    shards_skipped: int = 0
    seconds: float = 0.0
    errors_by_reason: dict[str, int] = field(default_factory=dict)
    cache_writes_failed: int = 0  # vectors the cache could not store (a full disk): a rerun computes them again

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def _atomic_json(path: Path, doc: Any) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(doc, indent=1, ensure_ascii=False, sort_keys=True))
    os.replace(tmp, path)


def sidecar_identity(encoder: Encoder, dtype: str) -> str:
    return digest(encoder.identity, dtype)


def choose_name(out: Path, field: str, name: str | None, identity: str, force: bool) -> str:
    """``<field>_emb`` unless another model (or field) owns it; then ``<field>_emb_<id8>`` (an explicit name
    must match both: the same model's embeddings of another field are no reuse either)."""
    def owner(n: str) -> tuple[str, str] | None:
        try:
            doc = json.loads((out / "embeddings" / n / "meta.json").read_text())
        except (OSError, ValueError):
            return None
        if doc.get("complete") and not doc.get("count"):  # nothing embedded: it holds no name
            return None
        return doc.get("identity"), doc.get("field")

    mine = (identity, field)
    if name:
        found = owner(name)
        if found not in (None, mine) and not force:
            what = "another model's embeddings" if found[0] != identity else f"the embeddings of field {found[1]!r}"
            raise ConfigError("--name", f"embeddings/{name} holds {what}; choose another --name or pass --force "
                              "to replace them")
        return name
    base = f"{field.replace('.', '_')}_emb"
    return base if owner(base) in (None, mine) else f"{base}_{short_id(identity)}"


def _stamp(path: Path) -> dict[str, int]:
    st = path.stat()
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns}


class SidecarJob:
    def __init__(self, out: Path, encoder: Encoder, opts: EmbedOptions):
        if opts.dtype not in ("float32", "float16"):
            raise ConfigError("--dtype", f"must be float32 or float16, not {opts.dtype!r}")
        self.out, self.encoder, self.opts = out, encoder, opts
        self.shards = main_shards(out)
        check_field(out, opts.field)
        self.identity = sidecar_identity(encoder, opts.dtype)
        self.name = choose_name(out, opts.field, opts.name, self.identity, opts.force)
        self.dir = out / "embeddings" / self.name
        cache_dir = out / ".cache" if opts.cache_dir is None else opts.cache_dir
        self.cache = Cache(cache_dir or None, read=not opts.force)
        self.result = EmbedResult(name=self.name, directory=str(self.dir))
        self.meta = self._load_meta()

    def _load_meta(self) -> dict[str, Any]:
        try:
            meta = json.loads((self.dir / "meta.json").read_text())
        except (OSError, ValueError):
            meta = {}
        if meta.get("identity") != self.identity or meta.get("field") != self.opts.field or self.opts.force:
            meta = {"shards": {}}
        meta.update({
            "name": self.name, "field": self.opts.field, "member": f"{self.name}.npy", "identity": self.identity,
            "model": self.encoder.describe(), "dim": self.encoder.dim, "dtype": self.opts.dtype,
            "normalized": self.encoder.normalize, "layout": "sidecar shards, same keys and order as OUT/shards",
        })
        return meta

    def _done(self, shard: Path) -> bool:
        entry = self.meta["shards"].get(shard.name)
        return bool(entry) and entry.get("source") == _stamp(shard) and (self.dir / shard.name).is_file()

    def run(self) -> EmbedResult:
        self.dir.mkdir(parents=True, exist_ok=True)
        t0 = time.perf_counter()
        current = {s.name for s in self.shards}
        for gone in [n for n in self.meta["shards"] if n not in current]:  # main shard removed by a rebuild
            del self.meta["shards"][gone]
        for tar in self.dir.glob("*.tar"):  # also those a reset meta (--force, another model) no longer lists
            if tar.name not in current:
                tar.unlink(missing_ok=True)
        todo = [s for s in self.shards if not self._done(s)]
        self.result.shards_skipped = len(self.shards) - len(todo)
        skipped = [self.meta["shards"][s.name] for s in self.shards if s not in todo]
        total = sum(e["count"] for e in skipped)
        self.result.embedded = sum(e["embedded"] for e in skipped)
        self.result.dropped = total - self.result.embedded
        with Bar(enabled=self.opts.progress, label=self.name) as bar:
            for shard in todo:
                self.meta["shards"][shard.name] = self._shard(shard, bar)
                self._publish(time.perf_counter() - t0)
        self.result.samples = total + self.result.samples
        self.result.seconds = time.perf_counter() - t0
        self._publish(self.result.seconds)
        self.result.cache_writes_failed = self.cache.failed
        if self.cache.failed:
            log.warning("could not write %d cache entries (first: %s): the vectors are in the sidecar shards, but "
                        "a rerun computes them again", self.cache.failed, self.cache.failure)
        return self.result

    def discard_empty(self) -> None:
        """After :meth:`run`: where every input was dropped (a field of the wrong modality, all captions
        blank), remove the sidecar, which holds drop records only, and raise ConfigError naming the
        reasons (``mmprep embed`` exits 2). A library caller that keeps it can read its ``errors.jsonl``;
        it does not hold its name either way (:func:`choose_name`)."""
        if not self.result.samples or self.result.embedded:
            return
        notes = [n for s in self.meta["shards"].values() for n in s["notes"]]
        reasons = Counter(n["reason"] for n in notes)
        first = f"; first: {notes[0]['key']}: {notes[0]['message']}" if notes else ""
        shutil.rmtree(self.dir, ignore_errors=True)
        raise ConfigError("--field", f"no {self.opts.field} input could be embedded, all {self.result.samples} were "
                          f"dropped ({', '.join(f'{r} {n}' for r, n in reasons.most_common())}{first}); check "
                          f"--field, --modality and --model. embeddings/{self.name} was not kept")

    def _shard(self, shard: Path, bar: Bar) -> dict[str, Any]:
        source = _stamp(shard)  # before reading: a shard a build replaces meanwhile reads as changed next run
        rows = list(read_field(shard, self.opts.field))
        t0 = time.perf_counter()
        vectors: list[np.ndarray | Drop | None] = [None] * len(rows)
        notes: list[dict[str, Any]] = []
        for lo in range(0, len(rows), CHUNK):
            self._chunk(rows, lo, min(lo + CHUNK, len(rows)), vectors, notes)
            bar.advance(min(CHUNK, len(rows) - lo))
        writer = ShardWriter(self.dir, shard.name[: -len(".tar")])
        member = f"{self.name}.npy"
        try:
            for (key, _), vec in zip(rows, vectors, strict=True):
                if isinstance(vec, np.ndarray):
                    writer.write(key, [(member, npy_bytes(vec, self.opts.dtype))])
                else:
                    drop = vec if isinstance(vec, Drop) else Drop("embed.missing", "not embedded")
                    doc = {"reason": drop.reason, "message": drop.message}
                    writer.write(key, [(f"{self.name}.drop.json", json.dumps(doc).encode())])
            writer.close()
        except BaseException:
            writer.abort()
            raise
        embedded = sum(isinstance(v, np.ndarray) for v in vectors)
        self.result.samples += len(rows)
        self.result.embedded += embedded
        self.result.dropped += len(rows) - embedded
        self.result.shards_done += 1
        for note in notes:
            self.result.errors_by_reason[note["reason"]] = self.result.errors_by_reason.get(note["reason"], 0) + 1
        self.result.truncated += sum(n["reason"] == "embed.truncated" for n in notes)
        return {"source": source, "count": len(rows), "embedded": embedded,
                "seconds": round(time.perf_counter() - t0, 3), "notes": notes}

    def _chunk(self, rows: list[tuple[str, bytes | None]], lo: int, hi: int, vectors: list[Any],
               notes: list[dict[str, Any]]) -> None:
        enc, field_name = self.encoder, self.opts.field
        todo: list[int] = []
        prepared: list[Any] = []
        keys: dict[int, str] = {}
        first: dict[str, int] = {}  # cache key -> the row that computes it
        repeats: list[tuple[int, int]] = []  # (row, row computing the same input)
        for i in range(lo, hi):
            key, data = rows[i]
            if data is None:
                vectors[i] = Drop("embed.no_field", f"the sample has no .{field_name}")
                notes.append({"key": key, "reason": "embed.no_field", "message": vectors[i].message})
                continue
            keys[i] = "e" + digest(self.identity, data)
            if keys[i] in first:  # the same input again in this chunk: computed once
                repeats.append((i, first[keys[i]]))
                continue
            hit = self.cache.get(keys[i])
            if hit is not None:
                size = 4 * enc.dim  # float32 vector, then the note of a truncated input (JSON), if any
                vectors[i] = np.frombuffer(hit[:size], dtype=np.float32).copy()
                if len(hit) > size:
                    notes.append({"key": key, **json.loads(hit[size:])})
                self.result.cached += 1
                continue
            first[keys[i]] = i
            try:
                prepared.append(enc.prepare(data))
                todo.append(i)
            except Drop as drop:
                vectors[i] = drop
                notes.append({"key": key, "reason": drop.reason, "message": drop.message})
        if todo:
            self._encode(rows, todo, prepared, keys, vectors, notes)
        for i, j in repeats:
            vectors[i] = vectors[j]
            for note in [n for n in notes if n["key"] == rows[j][0]]:
                notes.append({**note, "key": rows[i][0]})
            if isinstance(vectors[j], np.ndarray):
                self.result.cached += 1

    def _encode(self, rows: list[tuple[str, bytes | None]], todo: list[int], prepared: list[Any],
                keys: dict[int, str], vectors: list[Any], notes: list[dict[str, Any]]) -> None:
        enc = self.encoder
        before = enc.computed
        out, item_notes = enc.encode(prepared)
        self.result.computed += enc.computed - before
        for i, vec, note in zip(todo, out, item_notes, strict=True):
            bad = unstorable(vec, self.opts.dtype)
            if bad is not None:
                note = {"drop": bad}
            if note and isinstance(note.get("drop"), Drop):  # the model failed on this input alone
                vectors[i] = note["drop"]
                notes.append({"key": rows[i][0], "reason": note["drop"].reason, "message": note["drop"].message})
                continue
            vectors[i] = vec
            value = np.ascontiguousarray(vec, dtype=np.float32).tobytes()
            if note and note.get("truncated"):  # kept with the vector: a rerun that reuses it still says so
                cut = {"reason": "embed.truncated", "message": f"{note['tokens']} tokens cut to {note['max_tokens']}"}
                notes.append({"key": rows[i][0], **cut})
                value += json.dumps(cut).encode()
            self.cache.put(keys[i], value)

    def _publish(self, seconds: float) -> None:
        shards = self.meta["shards"]
        self.meta["count"] = sum(s["embedded"] for s in shards.values())
        self.meta["samples"] = sum(s["count"] for s in shards.values())
        self.meta["seconds"] = round(sum(s["seconds"] for s in shards.values()), 3)
        self.meta["complete"] = all(s.name in shards for s in self.shards)
        lines = [json.dumps({"shard": name, **n}, ensure_ascii=False) for name, s in sorted(shards.items())
                 for n in s["notes"]]
        tmp = self.dir / f".errors.jsonl.{os.getpid()}.tmp"
        tmp.write_text("".join(line + "\n" for line in lines))
        os.replace(tmp, self.dir / "errors.jsonl")
        _atomic_json(self.dir / "meta.json", self.meta)
