"""Audio embeddings: pooled log-mel statistics by default, or a TorchScript/ONNX model over waveforms.

``builtin:logmel-stats``: resample to ``rate`` (soxr), mono, STFT (Hann, ``n_fft`` samples, hop
``hop`` samples), power, HTK mel filterbank of ``n_mels`` bands up to ``rate/2``, ``log(x + 1e-6)``,
then mean and standard deviation over time: ``float32 shape=(2 * n_mels,)``. Computed with torch,
batched by padding clips to the longest in the batch and masking the padded frames.

A model file gets one clip at a time as ``float32 shape=(1, n_samples)`` at ``rate`` and must return
``(1, dim)`` (or anything that flattens to it).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from mmprep.cache import digest
from mmprep.embed.base import Encoder, to_device
from mmprep.embed.modelfile import load_model_file
from mmprep.errors import ConfigError, Drop
from mmprep.sample import Audio

BUILTIN_LOGMEL = "builtin:logmel-stats"
MIN_RATE, MAX_RATE = 1000, 384_000  # Hz, audio.decode's min_rate / max_rate defaults


def mel_filterbank(*, rate: int, n_fft: int, n_mels: int) -> np.ndarray:
    """HTK-scale triangular filters, ``shape=(n_mels, n_fft // 2 + 1)``."""
    def hz_to_mel(f: np.ndarray) -> np.ndarray:
        return 2595.0 * np.log10(1.0 + f / 700.0)

    mels = np.linspace(hz_to_mel(np.array(0.0)), hz_to_mel(np.array(rate / 2)), n_mels + 2)
    hz = 700.0 * (10 ** (mels / 2595.0) - 1.0)
    bins = np.linspace(0, rate / 2, n_fft // 2 + 1)
    fb = np.zeros((n_mels, bins.size), np.float32)
    for m in range(n_mels):
        lo, mid, hi = hz[m], hz[m + 1], hz[m + 2]
        up = (bins - lo) / max(mid - lo, 1e-9)
        down = (hi - bins) / max(hi - mid, 1e-9)
        fb[m] = np.maximum(0.0, np.minimum(up, down))
    return fb


def decode_audio(value: Any, rate: int) -> np.ndarray:
    """Mono float32 waveform at ``rate`` from bytes or an :class:`Audio`."""
    import soxr

    from mmprep.stages.audio.io import read_audio

    if isinstance(value, Audio):
        samples, sr = value.samples, value.rate
    elif isinstance(value, bytes):
        try:  # libsndfile (WAV, FLAC, OGG, MP3), else FFmpeg (M4A/AAC, Opus...), as audio.decode reads them
            samples, sr = read_audio(value, field="audio")
        except Drop as drop:
            if drop.reason == "audio.empty":
                raise Drop("embed.empty_audio", "the audio has no samples") from None
            raise Drop("embed.bad_audio", f"the audio does not decode ({drop.reason}): {drop.message}") from None
    else:
        raise Drop("embed.not_audio", f"expected audio bytes or an Audio, got {type(value).__name__}")
    samples = np.asarray(samples, np.float32)
    if samples.ndim == 2:
        samples = samples.mean(axis=0)
    if samples.size == 0:
        raise Drop("embed.empty_audio", "the audio has no samples")
    if not np.isfinite(samples).all():  # one NaN makes every statistic (or a model's output) NaN
        raise Drop("embed.bad_audio", f"the audio holds {int((~np.isfinite(samples)).sum())} NaN or infinite samples")
    if not MIN_RATE <= sr <= MAX_RATE:  # a header claiming 1 Hz meant 16000 output samples per input sample
        raise Drop("embed.bad_audio", f"implausible sample rate {sr} Hz (outside {MIN_RATE}-{MAX_RATE})")
    if sr != rate:
        samples = soxr.resample(samples, sr, rate).astype(np.float32)
    return samples


BATCH_SAMPLES = 16 * 30 * 16000  # padded samples per log-mel batch: 16 clips of 30 s at 16 kHz


def padded_batches(lengths: list[int], budget: int) -> list[list[int]]:
    """Indices grouped longest first so that ``len(batch) * longest <= budget`` (a clip longer than the budget
    is a batch of its own): one hour-long recording padded 16 short clips to an hour each (gigabytes)."""
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    batches: list[list[int]] = []
    for i in order:
        if batches and (len(batches[-1]) + 1) * lengths[batches[-1][0]] <= budget:
            batches[-1].append(i)
        else:
            batches.append([i])
    return batches


class AudioEncoder(Encoder):
    modality = "audio"

    def __init__(self, *, model: str | None, device: str, batch_size: int, normalize: bool = False,
                 rate: int = 16000, n_fft: int = 400, hop: int = 160, n_mels: int = 64, checkpoint: str | None = None):
        import torch

        model = model or BUILTIN_LOGMEL
        self.rate, self.n_fft, self.hop = rate, n_fft, hop
        pre: dict[str, Any] = {"rate": rate}
        self.forward = None
        if model == BUILTIN_LOGMEL:
            self.kind, ident = "builtin", digest(BUILTIN_LOGMEL, "v1")
            pre.update(n_fft=n_fft, hop=hop, n_mels=n_mels)
            self.fb = torch.from_numpy(mel_filterbank(rate=rate, n_fft=n_fft, n_mels=n_mels)).to(device)
            self.window = torch.hann_window(n_fft).to(device)
        else:
            loaded = load_model_file(model, device=device, checkpoint=checkpoint)
            self.kind, ident, self.forward = loaded.kind, loaded.identity, loaded.forward
        super().__init__(model=model, model_hash=ident, device=device, batch_size=batch_size, normalize=normalize,
                         preprocessing=pre)
        self.dim = 2 * n_mels
        if self.forward is not None:
            try:  # a model that cannot run on a waveform fails here, as a config error, not mid-run
                self.dim = int(self.forward(np.zeros((1, rate), np.float32)).shape[1])
            except Exception as exc:  # noqa: BLE001 - torch / onnxruntime raise many types
                reason = str(exc).strip().splitlines()[-1][:200] if str(exc).strip() else type(exc).__name__
                raise ConfigError("model", f"{model} does not run on a (1, {rate}) waveform: {reason}") from None
        self.torch = torch

    def prepare(self, value: Any) -> np.ndarray:
        samples = decode_audio(value, self.rate)
        return np.pad(samples, (0, max(0, self.n_fft - samples.size)))

    def _stats(self, chunk: list[np.ndarray]) -> np.ndarray:
        torch = self.torch
        width = max(x.size for x in chunk)
        batch = np.zeros((len(chunk), width), np.float32)
        for r, x in enumerate(chunk):
            batch[r, : x.size] = x
        wave = to_device(torch.from_numpy(batch), self.device)
        spec = torch.stft(wave, self.n_fft, self.hop, window=self.window, center=False, return_complex=True)
        logmel = torch.log(torch.matmul(self.fb, spec.abs() ** 2) + 1e-6)  # (n, n_mels, frames)
        frames = torch.tensor([1 + (x.size - self.n_fft) // self.hop for x in chunk], device=wave.device)
        mask = (torch.arange(logmel.shape[-1], device=wave.device)[None, :] < frames[:, None]).to(logmel.dtype)
        mask = mask[:, None, :]
        mean = (logmel * mask).sum(-1) / frames[:, None]
        var = (((logmel - mean[..., None]) * mask) ** 2).sum(-1) / frames[:, None]
        return torch.cat([mean, var.sqrt()], dim=1).cpu().numpy()

    def encode(self, prepared: list[np.ndarray]) -> tuple[np.ndarray, list[dict[str, Any] | None]]:
        out = np.zeros((len(prepared), self.dim), np.float32)
        notes: list[dict[str, Any] | None] = [None] * len(prepared)
        with self.torch.inference_mode():
            for lo in range(0, len(prepared), self.batch_size):
                chunk = prepared[lo : lo + self.batch_size]
                if self.forward is None:
                    for idx in padded_batches([x.size for x in chunk], BATCH_SAMPLES):
                        out[[lo + i for i in idx]] = self._stats([chunk[i] for i in idx])
                    continue
                for r, x in enumerate(chunk):
                    try:  # clips differ in length: one too short for the model's kernels is one bad input
                        out[lo + r] = self.forward(x[None, :])[0]
                    except Exception as exc:  # noqa: BLE001 - torch / onnxruntime raise many types
                        reason = str(exc).strip().splitlines()[-1][:200] if str(exc).strip() else type(exc).__name__
                        notes[lo + r] = {"drop": Drop("embed.bad_audio", f"the model failed on this "
                                                      f"{x.size / self.rate:.3f} s clip: {reason}")}
        self.computed += len(prepared)
        return self.finish(out), notes
