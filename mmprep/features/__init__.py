"""Audio features in plain, batched torch (CPU or CUDA), matching librosa where librosa defines them.

The function API, for stages and for other packages (alignment, embeddings)::

    from mmprep.features import logmel, pad_batch, FrameParams
    batch, lengths = pad_batch([clip_a, clip_b])          # (2, max_len) zero-padded float32
    feats, frames = logmel(batch, lengths, rate=16000, n_fft=400, hop=160, n_mels=80)
    a = feats[0, :, : frames[0]]                           # (n_mels, frames_a)
    FrameParams(rate=16000, n_fft=400, hop=160).frame_to_seconds(10)  # 0.1 (exact, integer samples)

:func:`compute` runs any of them over a list of clips of any lengths, in length buckets, and hands
back one numpy array per clip.
"""

from mmprep.features.batch import FEATURES, compute
from mmprep.features.device import buckets, pad_batch, resolve_device
from mmprep.features.filters import dct_matrix, mel_filterbank
from mmprep.features.frames import FrameParams
from mmprep.features.spectral import (
    deltas,
    envelope,
    logmel,
    melspectrogram,
    mfcc,
    power_to_db,
    spectrogram,
    stft_power,
    zero_crossing_rate,
)

__all__ = [
    "FEATURES", "FrameParams", "buckets", "compute", "dct_matrix", "deltas", "envelope", "logmel",
    "mel_filterbank", "melspectrogram", "mfcc", "pad_batch", "power_to_db", "resolve_device", "spectrogram",
    "stft_power", "zero_crossing_rate",
]
