"""``audio.trim`` (cut leading/trailing silence) and ``audio.segment`` (fan out into child samples by fixed
windows, speech activity or subtitle cues). All cut points are integer sample indices; seconds in
metadata are ``index / rate``.
"""

from __future__ import annotations

import copy
from typing import Literal

import numpy as np
from pydantic import Field

from mmprep.errors import ConfigError, Drop
from mmprep.keys import child_key
from mmprep.sample import KEY, META, Audio, Sample, fields_of, meta
from mmprep.stage import Stage, StageConfig, register
from mmprep.stages.audio.common import decoded, frame_db, mono
from mmprep.stages.audio.vad import VadParams, check_vad, sample_intervals


def trim_bounds(x: np.ndarray, rate: int, *, top_db: float = 60.0, frame_ms: int = 10,
                pad_ms: int = 20) -> tuple[int, int] | None:
    """``(start, end)`` samples of the part louder than ``peak_frame_level - top_db``, padded by ``pad_ms``;
    None when every frame is silent (all zeros)."""
    frame = max(1, rate * frame_ms // 1000)
    db = frame_db(x, frame)
    if db.max() <= -99.0:
        return None
    loud = np.flatnonzero(db > db.max() - top_db)
    pad = rate * pad_ms // 1000
    return max(0, int(loud[0]) * frame - pad), min(x.shape[-1], (int(loud[-1]) + 1) * frame + pad)


@register
class AudioTrim(Stage):
    """Cut leading and trailing silence (frames more than ``top_db`` under the loudest frame)."""

    name = "audio.trim"
    reads = ("audio",)
    writes = ("audio",)

    class Config(StageConfig):
        top_db: float = Field(60.0, gt=0, description="Silence = frames this many dB under the loudest 10 ms frame.")
        pad_ms: int = Field(20, ge=0, description="Keep this much audio around the loud part.")
        on_silent: Literal["keep", "drop"] = Field(
            "drop", description="All-silent audio: keep it or drop (audio.silent).")

    def process(self, sample: Sample) -> Sample:
        for ext, audio in decoded(sample, self.name):
            bounds = trim_bounds(mono(audio), audio.rate, top_db=self.config.top_db, pad_ms=self.config.pad_ms)
            if bounds is None:
                if self.config.on_silent == "drop":
                    raise Drop("audio.silent", "no sample above digital silence", field=ext)
                continue
            s, e = bounds
            sample[ext] = audio.replace(np.ascontiguousarray(audio.samples[..., s:e]))
            info = meta(sample).setdefault("audio", {}).setdefault(ext, {})
            info["trim"] = {"start": s / audio.rate, "end": e / audio.rate, "start_sample": s, "end_sample": e}
            info["seconds"] = round((e - s) / audio.rate, 6)
            meta(sample)["duration"] = round((e - s) / audio.rate, 6)
        return sample


def fixed_windows(n: int, window: int, step: int, min_len: int) -> list[tuple[int, int]]:
    """``[start, end)`` windows of ``window`` samples every ``step``; pieces under ``min_len`` are dropped."""
    out = []
    for s in range(0, max(n, 1), step):
        e = min(s + window, n)
        if e - s >= min_len and e > s:
            out.append((s, e))
        if e >= n:
            break
    return out


def split_long(spans: list[tuple[int, int]], max_len: int) -> list[tuple[int, int]]:
    out = []
    for s, e in spans:
        while e - s > max_len:
            out.append((s, s + max_len))
            s += max_len
        out.append((s, e))
    return out


@register
class AudioSegment(Stage):
    """Split audio into child samples ``KEY/_seg0000``... by fixed windows, speech activity or subtitle cues."""

    name = "audio.segment"
    # 4: vad mode finds speech in clips with no pause; 3: child keys KEY/_seg0000 (KEY/seg0000 could be a
    # real file's key); 2: cues parsed as align parses them (WebVTT ids and notes were cue text, CRLF kept "\r")
    version = "4"
    reads = ("audio",)
    writes = ("audio", "txt")

    class Config(StageConfig):
        mode: Literal["fixed", "vad", "subtitle"] = Field("fixed", description="How to cut.")
        source: str | None = Field(None, description="Audio field to cut; the first audio field when not set.")
        window: float = Field(10.0, gt=0, description="fixed: window length in seconds.")
        step: float | None = Field(None, gt=0, description="fixed: seconds between window starts (default: window).")
        min_seconds: float = Field(0.2, ge=0, description="Pieces shorter than this are left out.")
        max_seconds: float | None = Field(
            30.0, gt=0, description="vad: longer pieces are split. subtitle: never split (the cue text would go to "
            "both halves); a longer cue is kept whole and flagged 'long' in its segment metadata.")
        pad_ms: int = Field(100, ge=0, description="vad/subtitle: widen each piece by this much on both sides.")
        vad: VadParams = Field(VadParams(), description="vad: detector settings (as audio.vad).")
        subtitle_field: str | None = Field(None, description="subtitle: cue field; the first subtitle field if unset.")
        text_field: str = Field("txt", description="subtitle: child field that gets the cue text.")
        keep: list[str] = Field(default_factory=list, description="Other fields copied into every child.")

    def check(self) -> None:
        cfg = self.config
        if cfg.mode == "vad":
            check_vad(cfg.vad)
            if cfg.max_seconds is not None and cfg.min_seconds > cfg.max_seconds:
                raise ConfigError("min_seconds", f"must be <= max_seconds ({cfg.max_seconds}) in mode 'vad' (pieces "
                                  f"are split at max_seconds, so none would be kept), got {cfg.min_seconds}")
        if cfg.mode == "fixed" and cfg.min_seconds > cfg.window:
            raise ConfigError("min_seconds", f"must be <= window ({cfg.window}) in mode 'fixed' (no window is "
                              f"longer), got {cfg.min_seconds}")

    def _spans(self, sample: Sample, audio: Audio) -> tuple[list[tuple[int, int]], list[str | None]]:
        cfg, rate, n = self.config, audio.rate, audio.samples.shape[-1]
        min_len = int(round(cfg.min_seconds * rate))
        if cfg.mode == "fixed":
            win = int(round(cfg.window * rate))
            spans = fixed_windows(n, win, int(round((cfg.step or cfg.window) * rate)), max(min_len, 1))
            return spans, [None] * len(spans)
        pad = rate * cfg.pad_ms // 1000
        if cfg.mode == "vad":
            raw = sample_intervals(cfg.vad.mask(mono(audio), rate), rate, n)
            texts: list[str | None] = [None] * len(raw)
        else:
            raw, texts = self._cues(sample, rate, n)
        spans, out_texts = [], []
        for (s, e), text in zip(raw, texts, strict=True):
            pieces = [(max(0, s - pad), min(n, e + pad))]
            if cfg.max_seconds and text is None:  # a cue's text cannot be split with its audio: kept whole
                pieces = split_long(pieces, int(round(cfg.max_seconds * rate)))
            for a, b in pieces:
                if b - a >= max(min_len, 1):
                    spans.append((a, b))
                    out_texts.append(text)
        return spans, out_texts

    def _cues(self, sample: Sample, rate: int, n: int) -> tuple[list[tuple[int, int]], list[str | None]]:
        """Sample spans and texts of the subtitle cues, parsed as alignment parses them
        (:func:`mmprep.align.subs.parse`: WebVTT identifiers and notes are not cue text, CRLF is read)."""
        from mmprep.align.subs import SubtitleError, parse

        names = [self.config.subtitle_field] if self.config.subtitle_field else fields_of(sample, "subtitle")
        if not names or names[0] not in sample:
            raise Drop("audio.no_subtitles", "segment mode 'subtitle' but the sample has no subtitle field")
        try:  # bytes are decoded as subtitle.decode does (BOM, UTF-8, GBK, UTF-16...)
            doc = parse(sample[names[0]], hint=names[0])
        except SubtitleError as exc:
            if exc.reason != "subtitle.empty":  # an empty file, or a WebVTT header alone: no cue to cut at
                raise Drop(exc.reason, str(exc), field=names[0]) from None
            doc = None
        spans, texts = [], []
        for cue in doc.cues if doc is not None else ():
            s, e = max(0, cue.start) * rate // 1000, min(n, max(0, cue.end) * rate // 1000)
            words = cue.text.strip()
            if e > s and words:  # an empty cue labels nothing
                spans.append((s, e))
                texts.append(words)
        return spans, texts

    def process(self, sample: Sample) -> list[Sample]:
        fields = decoded(sample, self.name, self.config.source)
        if not fields:
            raise Drop("audio.missing", "no audio field to segment")
        ext, audio = fields[0]
        spans, texts = self._spans(sample, audio)
        if not spans:
            raise Drop("audio.no_segments", f"mode {self.config.mode!r} found nothing to keep", field=None)
        children = []
        for i, ((s, e), text) in enumerate(zip(spans, texts, strict=True)):
            child_meta = copy.deepcopy(sample.get(META, {}))
            child_meta["segment"] = {"index": i, "parent": sample[KEY], "mode": self.config.mode,
                                     "start": s / audio.rate, "end": e / audio.rate, "start_sample": s,
                                     "end_sample": e, "rate": audio.rate}
            child_meta["duration"] = round((e - s) / audio.rate, 6)
            child: Sample = {KEY: child_key(sample[KEY], "seg", i), META: child_meta,
                             ext: audio.replace(np.ascontiguousarray(audio.samples[..., s:e]))}
            for name in self.config.keep:
                if name in sample:
                    child[name] = sample[name]
            if text is not None:
                child[self.config.text_field] = text
                if self.config.max_seconds and e - s > self.config.max_seconds * audio.rate:
                    child_meta["segment"]["long"] = True
            children.append(child)
        return children
