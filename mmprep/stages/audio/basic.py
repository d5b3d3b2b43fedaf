"""``audio.decode`` and ``audio.normalize``: bytes -> checked float32 samples, and peak normalisation."""

from __future__ import annotations

from typing import Literal

import numpy as np
from pydantic import Field

from mmprep.errors import ConfigError, Drop
from mmprep.sample import Audio, Sample, fields_of, meta
from mmprep.stage import Stage, StageConfig, register
from mmprep.stages.audio.common import keep_writable
from mmprep.stages.audio.io import described, read_audio, read_pyav


@register
class AudioDecode(Stage):
    """Decode audio to float32 samples; mixdown or channel pick; NaN/inf, clipping, bad rates reported."""

    name = "audio.decode"
    # 7: format = what the bytes are (an MP3 named .wav is re-encoded); 6: >8-channel flac kept as wav;
    # 5: mid-stream rate changes; 4: 8-channel AAC/Opus; 3: AAC padding
    version = "7"
    reads = ("audio", "video")
    writes = ("audio",)

    class Config(StageConfig):
        mono: bool = Field(True, description="Mix multichannel audio down to mono (mean of channels).")
        channel: int | None = Field(None, ge=0, description="Keep only this channel (0-based) instead of the mean.")
        nonfinite: Literal["drop", "zero"] = Field(
            "drop", description="NaN/inf samples: drop the field (audio.nonfinite) or replace them with 0.")
        clip_level: float = Field(0.999, gt=0, le=1, description="|x| at or above this counts as clipped.")
        max_clipped: float | None = Field(
            None, ge=0, le=1, description="Drop (audio.clipped) when a larger fraction of samples is clipped.")
        min_rate: int = Field(1000, ge=1, description="Lowest plausible sample rate in Hz (else audio.bad_rate).")
        max_rate: int = Field(384_000, ge=1, description="Highest plausible sample rate in Hz.")
        max_channels: int = Field(64, ge=1, description="More channels than this is audio.bad_channels.")
        min_samples: int = Field(1, ge=1, description="Fewer samples than this is audio.empty.")
        from_video: bool = Field(False, description="Decode the audio track of a video field when no audio field.")
        video_audio_field: str = Field("wav", description="Field name for audio taken from a video.")
        output: Literal["wav", "flac"] | None = Field(
            None, description="Put the decoded audio under this field (the first audio field; the original field "
            "goes): one lossless name for a corpus of wav/flac/mp3/m4a... Unset: each field keeps its name.")

    def check(self) -> None:
        if self.config.min_rate > self.config.max_rate:
            raise ConfigError("min_rate", f"must be <= max_rate ({self.config.max_rate}), got {self.config.min_rate}")

    def process(self, sample: Sample) -> Sample:
        names = fields_of(sample, "audio")
        for ext in names:
            if not isinstance(sample[ext], Audio):
                sample[ext] = self._decode(sample, ext, sample[ext], source=sample[ext])
        out = self.config.output
        if names and out and out not in names:
            self._rename(sample, names[0], out)
        for ext in fields_of(sample, "audio"):  # e.g. 12 channels kept (mono: false) that .m4a cannot hold
            if isinstance(sample[ext], Audio) and sample[ext].source is None:
                keep_writable(sample, ext)
        if not names and self.config.from_video:
            for vext in fields_of(sample, "video"):
                data = sample[vext]
                if isinstance(data, bytes):
                    samples, rate = read_pyav(data, field=self.config.video_audio_field)
                    out = self.config.video_audio_field
                    sample[out] = self._decode(sample, out, (samples, rate), source=None)
                    meta(sample)["audio"][out]["from"] = vext
                    break
        return sample

    @staticmethod
    def _rename(sample: Sample, old: str, new: str) -> None:
        """Move field ``old`` to ``new``; its ``__meta__["audio"]`` entry moves too and says where it came from."""
        sample[new] = sample.pop(old)
        info = meta(sample).setdefault("audio", {})
        info[new] = {**info.pop(old, {}), "from": old}

    def _decode(self, sample: Sample, ext: str, data, *, source: bytes | None) -> Audio:
        cfg = self.config
        samples, rate = data if isinstance(data, tuple) else read_audio(data, field=ext)
        channels = samples.shape[0]
        if samples.shape[-1] < cfg.min_samples:
            raise Drop("audio.empty", f"{samples.shape[-1]} samples (min_samples={cfg.min_samples})", field=ext)
        if not cfg.min_rate <= rate <= cfg.max_rate:
            raise Drop("audio.bad_rate", f"sample rate {rate} Hz outside [{cfg.min_rate}, {cfg.max_rate}]", field=ext)
        if channels > cfg.max_channels:
            raise Drop("audio.bad_channels", f"{channels} channels (max_channels={cfg.max_channels})", field=ext)
        bad = ~np.isfinite(samples)
        n_bad = int(bad.sum())
        if n_bad:
            if cfg.nonfinite == "drop":
                raise Drop("audio.nonfinite", f"{n_bad} NaN or infinite samples", field=ext)
            samples = np.where(bad, 0.0, samples)
        if cfg.channel is not None:
            if cfg.channel >= channels:
                raise Drop("audio.no_channel", f"channel {cfg.channel} asked, file has {channels}", field=ext)
            samples = samples[cfg.channel]
        elif cfg.mono or channels == 1:
            samples = samples.mean(axis=0)
        samples = samples.astype(np.float32)
        clipped = float(np.mean(np.abs(samples) >= cfg.clip_level))
        if cfg.max_clipped is not None and clipped > cfg.max_clipped:
            raise Drop("audio.clipped", f"{clipped:.2%} of samples clipped (max_clipped={cfg.max_clipped})",
                       field=ext)
        keep_source = source if channels == 1 and not n_bad else None  # bytes still describe the samples
        # what the bytes are, not what the field is called: an MP3 named x.wav is re-encoded, not passed through
        fmt, subtype = described(data, field=ext) if isinstance(data, bytes) else (None, None)
        audio = Audio(samples=samples, rate=rate, source=keep_source, format=fmt,
                      info={"subtype": subtype} if subtype else {})
        info = {"rate": rate, "seconds": round(audio.seconds, 6), "channels": channels,
                "clipped_fraction": round(clipped, 6)}
        if n_bad:
            info["nonfinite_zeroed"] = n_bad
        meta(sample).setdefault("audio", {})[ext] = info
        meta(sample).setdefault("duration", round(audio.seconds, 6))
        return audio


@register
class AudioNormalize(Stage):
    """Peak normalisation to ``peak_dbfs``; silence is left as it is."""

    name = "audio.normalize"
    reads = ("audio",)
    writes = ("audio",)

    class Config(StageConfig):
        peak_dbfs: float = Field(-1.0, le=0.0, description="Target sample peak in dBFS.")

    def process(self, sample: Sample) -> Sample:
        for ext in fields_of(sample, "audio"):
            audio = sample[ext]
            if not isinstance(audio, Audio):
                raise Drop("audio.not_decoded", "run audio.decode first", field=ext)
            peak = float(np.max(np.abs(audio.samples))) if audio.samples.size else 0.0
            if peak > 0:
                gain = 10 ** (self.config.peak_dbfs / 20) / peak
                sample[ext] = audio.replace((audio.samples * gain).astype(np.float32))
        return sample
