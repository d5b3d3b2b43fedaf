"""Feature stages: ``audio.spectrogram``, ``audio.logmel``, ``audio.mfcc``, ``audio.zcr``, ``audio.envelope``.

Each is batched (the worker's micro-batch is bucketed by length, zero-padded and computed in one go
per bucket on ``device``) and cacheable (the core stores the output under input hash + parameters
+ version). The output is a ``(channels, frames)`` array in ``<output>`` (``logmel.npy``...), and
``__meta__["features"][<output>]`` holds the frame parameters: frame ``i`` is centred on sample
``frame_offset_samples + i * hop``, i.e. at ``(frame_offset_samples + i * hop) / rate`` seconds.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

import numpy as np
from pydantic import Field

from mmprep.errors import ConfigError, Drop
from mmprep.features import FrameParams, compute, mel_filterbank, resolve_device
from mmprep.sample import Sample, meta
from mmprep.stage import Stage, StageConfig, register
from mmprep.stages.audio.common import decoded, mono

# Upper bounds that keep one frame's buffers in memory: 65,536 samples is 1.4 s at 48 kHz (far past
# any analysis window in use), 1,024 mel bands is 8x the widest common setting (128).
MAX_N_FFT = 65_536
MAX_N_MELS = 1_024
_NOT_IN_KEY = {"device", "max_batch_samples", "cpu_threads"}  # same output whatever the device: share cached features


class FeatureParams(StageConfig):
    source: str | None = Field(None, description="Audio field to read; the first audio field when not set.")
    output: str | None = Field(None, description="Output field (must end in .npy); default '<feature>.npy'.")
    device: Literal["auto", "cpu", "cuda"] = Field("auto", description="Where to compute; auto = cuda if present.")
    dtype: Literal["float32", "float16"] = Field("float32", description="Stored dtype of the .npy array.")
    n_fft: int = Field(400, ge=2, le=MAX_N_FFT, description="FFT size in samples (400 = 25 ms at 16 kHz).")
    hop: int = Field(160, ge=1, description="Hop between frames in samples (160 = 10 ms at 16 kHz).")
    win_length: int | None = Field(None, ge=1, le=MAX_N_FFT,
                                   description="Hann window length in samples (<= n_fft); n_fft if unset.")
    center: bool = Field(True, description="Centre frames: frame i is centred on sample i * hop.")
    max_batch_samples: int | None = Field(
        None, ge=1, description="Memory cap: on CPU for log-mel/MFCC/mel, total samples per group (default 4M); "
        "otherwise clips x longest clip per bucket (1M CPU, 32M CUDA).")
    cpu_threads: int | None = Field(
        1, ge=1, description="torch CPU threads per worker; build workers already use every core (None: torch's).")


class MelParams(FeatureParams):
    n_mels: int = Field(80, ge=1, le=MAX_N_MELS, description="Mel bands.")
    fmin: float = Field(0.0, ge=0, description="Lowest mel band edge in Hz.")
    fmax: float | None = Field(None, gt=0, description="Highest band edge in Hz; rate / 2 when not set.")
    htk: bool = Field(False, description="HTK mel formula instead of Slaney's (librosa's default).")
    norm: Literal["slaney"] | None = Field("slaney", description="Area-normalise the filters (librosa default).")
    top_db: float | None = Field(80.0, gt=0, description="Floor at each clip's max minus this (dB).")


class FeatureStage(Stage):
    """Shared batching: pick the audio, group by sample rate, call :func:`mmprep.features.compute`."""

    kind: ClassVar[str]  # names the output (``<kind>.npy``) and the metadata entry
    kind_fn: ClassVar[str]  # key in mmprep.features.FEATURES
    reads = ("audio",)
    batched = True
    cacheable = True
    version = "2"  # odd n_fft: librosa's frame count and FFT bin frequencies

    def check(self) -> None:
        cfg = self.config
        resolve_device(cfg.device)
        if cfg.output is not None and not cfg.output.endswith(".npy"):
            raise ConfigError("output", f"must end in .npy, got {cfg.output!r}")
        if cfg.win_length is not None and cfg.win_length > cfg.n_fft:
            raise ConfigError("win_length", f"must be <= n_fft ({cfg.n_fft}), got {cfg.win_length}")

    def setup(self) -> None:
        self.device = resolve_device(self.config.device)

    @property
    def output(self) -> str:
        return self.config.output or f"{self.kind}.npy"

    def params(self) -> dict[str, Any]:
        return {k: v for k, v in super().params().items() if k not in _NOT_IN_KEY}

    def feature_params(self, rate: int) -> dict[str, Any]:
        """Keyword arguments for the feature function (everything but the framing)."""
        return {}

    def frame_params(self, rate: int) -> FrameParams:
        cfg = self.config
        return FrameParams(rate=rate, n_fft=cfg.n_fft, hop=cfg.hop, win_length=cfg.win_length, center=cfg.center)

    def extra_meta(self) -> dict[str, Any]:
        return {}

    def rate_problem(self, rate: int) -> str | None:
        """Why this feature cannot be computed at ``rate`` (the clips are dropped), or None."""
        return None

    def process(self, sample: Sample) -> Sample:
        result = self.process_batch([sample])[0]
        if isinstance(result, Drop):
            raise result
        return result

    def process_batch(self, samples: list[Sample]) -> list[Any]:
        if not hasattr(self, "device"):
            self.setup()
        results: list[Any] = list(samples)
        by_rate: dict[int, list[tuple[int, str, np.ndarray]]] = {}
        for i, sample in enumerate(samples):
            try:
                fields = decoded(sample, self.name, self.config.source)
            except Drop as drop:
                results[i] = drop
                continue
            if fields:
                ext, audio = fields[0]
                by_rate.setdefault(audio.rate, []).append((i, ext, mono(audio)))
        for rate, items in by_rate.items():
            fp = self.frame_params(rate)
            problem = self.rate_problem(rate)
            if problem is not None:
                for i, _, _ in items:
                    results[i] = Drop(f"{self.kind}.bad_rate", problem, field=self.output)
                continue
            arrays = compute(self.kind_fn, [x for _, _, x in items], rate=rate, device=self.device,
                             max_samples=self.config.max_batch_samples, dtype=np.dtype(self.config.dtype),
                             threads=self.config.cpu_threads,
                             **self.framing_kwargs(), **self.feature_params(rate))
            for (i, ext, x), arr in zip(items, arrays, strict=True):
                if arr.shape[-1] == 0:
                    results[i] = Drop(f"{self.kind}.too_short", f"{x.shape[-1]} samples < n_fft={fp.n_fft} "
                                      "without centring", field=self.output)
                    continue
                sample = samples[i]
                sample[self.output] = arr
                doc = {"feature": self.kind, "source": ext, "shape": list(arr.shape), "dtype": self.config.dtype,
                       "frames": int(arr.shape[-1]), "samples": int(x.shape[-1]), **fp.to_meta(), **self.extra_meta()}
                meta(sample).setdefault("features", {})[self.output] = doc
        return results

    def framing_kwargs(self) -> dict[str, Any]:
        cfg = self.config
        return {"n_fft": cfg.n_fft, "hop": cfg.hop, "win_length": cfg.win_length, "center": cfg.center}


@register
class AudioSpectrogram(FeatureStage):
    """Power spectrogram ``(n_fft // 2 + 1, frames)``, optionally in dB; bin k is ``k * rate / n_fft`` Hz."""

    name = "audio.spectrogram"
    kind = kind_fn = "spectrogram"
    writes = ("spectrogram.npy",)

    class Config(FeatureParams):
        power: float = Field(2.0, gt=0, description="2 = power, 1 = magnitude.")
        db: bool = Field(True, description="Store 10 log10(power) (floored at max - top_db) instead of linear.")
        top_db: float | None = Field(80.0, gt=0, description="dB floor below each clip's maximum.")

    def feature_params(self, rate: int) -> dict[str, Any]:
        return {"power": self.config.power, "db": self.config.db, "top_db": self.config.top_db}

    def extra_meta(self) -> dict[str, Any]:
        return {"power": self.config.power, "db": self.config.db}


@register
class AudioLogmel(FeatureStage):
    """Log-mel spectrogram in dB ``(n_mels, frames)``: librosa ``power_to_db(melspectrogram(...))``."""

    name = "audio.logmel"
    kind = kind_fn = "logmel"
    writes = ("logmel.npy",)

    class Config(MelParams):
        pass

    def check(self) -> None:
        super().check()
        c = self.config
        if c.fmax is not None and c.fmin >= c.fmax:
            raise ConfigError("fmin", f"must be < fmax ({c.fmax}), got {c.fmin}")

    def feature_params(self, rate: int) -> dict[str, Any]:
        c = self.config
        return {"n_mels": c.n_mels, "fmin": c.fmin, "fmax": c.fmax, "htk": c.htk, "norm": c.norm, "top_db": c.top_db}

    def rate_problem(self, rate: int) -> str | None:
        """The mel bands must lie under the clip's Nyquist frequency and each hold an FFT bin; else the
        rows would be NaN (fmin >= rate / 2) or a constant floor (a band between two bins or past rate / 2)."""
        c, nyquist = self.config, rate / 2
        if c.fmin >= nyquist:
            return f"fmin={c.fmin} Hz is at or above the Nyquist frequency {nyquist:g} Hz of a {rate} Hz clip"
        if c.fmax is not None and c.fmax > nyquist:
            return f"fmax={c.fmax} Hz is above the Nyquist frequency {nyquist:g} Hz of a {rate} Hz clip"
        bank = mel_filterbank(rate=rate, n_fft=c.n_fft, n_mels=c.n_mels, fmin=c.fmin, fmax=c.fmax, htk=c.htk,
                              norm=c.norm)
        empty = int((~(bank > 0).any(axis=1)).sum())
        if empty:
            return (f"{empty} of n_mels={c.n_mels} mel bands hold no FFT bin at {rate} Hz with n_fft={c.n_fft} "
                    "(fewer n_mels or a larger n_fft)")
        return None

    def extra_meta(self) -> dict[str, Any]:
        return {"n_mels": self.config.n_mels, "htk": self.config.htk}


@register
class AudioMfcc(AudioLogmel):
    """MFCC ``(n_mfcc * (1 + deltas), frames)``: librosa ``feature.mfcc``, deltas stacked below."""

    name = "audio.mfcc"
    kind = kind_fn = "mfcc"
    writes = ("mfcc.npy",)

    class Config(MelParams):
        n_mfcc: int = Field(13, ge=1, description="Cepstral coefficients kept (<= n_mels).")
        lifter: float = Field(0.0, ge=0, description="Sinusoidal liftering (librosa's); 0 = none.")
        deltas: Literal[0, 1, 2] = Field(0, description="Stack deltas (1) or deltas + delta-deltas (2).")
        delta_width: int = Field(9, ge=3, le=255, description="Frames in the delta regression window (odd).")

    def check(self) -> None:
        super().check()
        if self.config.n_mfcc > self.config.n_mels:
            raise ConfigError("n_mfcc", f"must be <= n_mels ({self.config.n_mels})")
        if self.config.delta_width % 2 == 0:
            raise ConfigError("delta_width", "must be odd")

    def feature_params(self, rate: int) -> dict[str, Any]:
        c = self.config
        return super().feature_params(rate) | {"n_mfcc": c.n_mfcc, "lifter": c.lifter, "delta_order": c.deltas,
                                               "delta_width": c.delta_width}

    def extra_meta(self) -> dict[str, Any]:
        return {"n_mfcc": self.config.n_mfcc, "deltas": self.config.deltas}


@register
class AudioZcr(FeatureStage):
    """Zero-crossing rate per frame ``(1, frames)`` (librosa's, edge-padded when centred)."""

    name = "audio.zcr"
    kind = kind_fn = "zcr"
    writes = ("zcr.npy",)

    class Config(FeatureParams):
        pass

    def framing_kwargs(self) -> dict[str, Any]:
        return {"frame_length": self.config.n_fft, "hop": self.config.hop, "center": self.config.center}


@register
class AudioEnvelope(FeatureStage):
    """Cepstrally smoothed spectral envelope in dB ``(n_fft // 2 + 1, frames)``."""

    name = "audio.envelope"
    kind = kind_fn = "envelope"
    writes = ("envelope.npy",)

    class Config(FeatureParams):
        n_cepstra: int = Field(
            30, ge=1, le=MAX_N_FFT, description="Cepstral coefficients kept: fewer = smoother envelope.")

    def feature_params(self, rate: int) -> dict[str, Any]:
        return {"n_cepstra": self.config.n_cepstra}
