"""Frame parameters: which samples a feature frame covers, and frame index <-> seconds, exactly.

All arithmetic is done in integer samples; seconds appear only at the edges, computed from integers
(never accumulated), so ``seconds_to_frame(frame_to_seconds(i)) == i`` for every frame ``i``.

Convention (the same as librosa and torch): frame ``i`` starts at sample ``i * hop`` of the signal as
padded for framing. With ``center=True`` the signal is padded by ``n_fft // 2`` zeros on the left, so
frame ``i`` is *centred* on sample ``i * hop`` of the original signal; with ``center=False`` it starts
at sample ``i * hop`` and its centre is sample ``i * hop + n_fft // 2``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from mmprep.errors import ConfigError


@dataclass(frozen=True)
class FrameParams:
    """STFT framing. ``rate`` in Hz; ``n_fft``, ``hop``, ``win_length`` in samples."""

    rate: int
    n_fft: int = 400
    hop: int = 160
    win_length: int | None = None
    center: bool = True
    window: str = "hann"

    def __post_init__(self) -> None:
        if self.rate <= 0:
            raise ConfigError("rate", f"sample rate must be positive, got {self.rate}")
        if self.n_fft < 2 or self.hop < 1:
            raise ConfigError("n_fft", f"need n_fft >= 2 and hop >= 1, got n_fft={self.n_fft}, hop={self.hop}")
        if self.win_length is not None and not 1 <= self.win_length <= self.n_fft:
            raise ConfigError("win_length", f"must be in [1, n_fft={self.n_fft}], got {self.win_length}")

    @property
    def win(self) -> int:
        return self.win_length or self.n_fft

    @property
    def offset(self) -> int:
        """Sample (of the original signal) at the centre of frame 0."""
        return 0 if self.center else self.n_fft // 2

    def n_frames(self, n_samples: int) -> int:
        """Frames a signal of ``n_samples`` gives, as librosa counts them: ``1 + (padded - n_fft) // hop``,
        ``padded = n_samples + 2 * (n_fft // 2)`` when centred (``1 + n_samples // hop`` for an even
        ``n_fft``, one fewer for an odd one when ``hop`` divides ``n_samples``); 0 when too short for one frame."""
        padded = n_samples + 2 * (self.n_fft // 2) if self.center else n_samples
        return 0 if padded < self.n_fft else 1 + (padded - self.n_fft) // self.hop

    def frame_to_sample(self, i: int) -> int:
        """Centre sample of frame ``i`` (an integer, exact)."""
        return self.offset + i * self.hop

    def frame_to_seconds(self, i: int) -> float:
        """Centre time of frame ``i`` in seconds: ``frame_to_sample(i) / rate``."""
        return self.frame_to_sample(i) / self.rate

    def sample_to_frame(self, n: int) -> int:
        """The frame whose centre is nearest to sample ``n`` (ties go to the earlier frame)."""
        return max(0, (n - self.offset + (self.hop - 1) // 2) // self.hop)

    def seconds_to_frame(self, t: float) -> int:
        """The frame whose centre is nearest to time ``t`` seconds."""
        return self.sample_to_frame(round(t * self.rate))

    def to_meta(self) -> dict[str, Any]:
        """What a feature's metadata records, enough to map any frame index to seconds."""
        doc = asdict(self)
        doc["win_length"] = self.win
        doc["frame_offset_samples"] = self.offset
        return doc
