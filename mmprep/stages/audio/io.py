"""Reading audio bytes: soundfile (WAV/FLAC/OGG) first, PyAV (MP3/M4A/AAC/Opus, video tracks) second."""

from __future__ import annotations

import io
from typing import Any

import numpy as np

from mmprep.errors import Drop


def read_soundfile(data: bytes) -> tuple[np.ndarray, int] | None:
    """``shape=(channels, n)`` float32 and the rate, or None when libsndfile does not know the format."""
    import soundfile as sf

    try:
        samples, rate = sf.read(io.BytesIO(data), dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, TypeError, ValueError):
        return None
    return samples.T.copy(), int(rate)


def _sf_info(data: bytes):
    import soundfile as sf

    try:
        return sf.info(io.BytesIO(data))
    except (sf.LibsndfileError, RuntimeError, TypeError, ValueError):
        return None


def soundfile_subtype(data: bytes) -> str | None:
    """libsndfile's sample format of the file (``PCM_24``, ``FLOAT``...), or None when it cannot read it.

    Kept on the decoded :class:`~mmprep.sample.Audio` so that processed audio is written back at the
    input's precision (a 24-bit or float WAV is not cut to 16 bits)."""
    info = _sf_info(data)
    return None if info is None else str(info.subtype)


# What each audio extension holds: libsndfile's major format (and, for Ogg, codec) names, FFmpeg's demuxer names
_HOLDS = {"wav": {"WAV", "WAVEX", "RF64", "wav"}, "flac": {"FLAC", "flac"}, "ogg": {"OGG/VORBIS", "OGG/OPUS", "ogg"},
          "opus": {"OGG/OPUS", "ogg"}, "mp3": {"MP3", "mp3"}, "m4a": {"mov", "mp4", "m4a"}, "aac": {"aac"}}


def stored_format(data: bytes, *, field: str) -> str | None:
    """The audio extension that names what ``data`` is: ``field``'s own when the bytes are that format (a WAV
    in ``.wav``, Ogg Vorbis or Opus in ``.ogg``), else the one detected (``mp3`` for MP3 bytes in ``x.wav``);
    None when neither libsndfile nor FFmpeg can name it.

    Kept as :attr:`~mmprep.sample.Audio.format`: the writer passes the input bytes through unchanged only
    when this equals the field's extension, so a field whose name lies is re-encoded to what it names."""
    return _format(data, field, _sf_info(data))


def described(data: bytes, *, field: str) -> tuple[str | None, str | None]:
    """``(stored_format, soundfile_subtype)`` of ``data``, from one libsndfile probe (a decode needs both)."""
    info = _sf_info(data)
    return _format(data, field, info), None if info is None else str(info.subtype)


def _format(data: bytes, field: str, info: Any) -> str | None:
    """:func:`stored_format`, given libsndfile's ``info`` of ``data`` (None: it cannot read it)."""
    if info is not None:
        names = {str(info.format), f"{info.format}/{info.subtype}"}
    else:
        import av

        try:
            with _open(data, field) as container:
                names = set(container.format.name.split(","))
        except (av.error.FFmpegError, ValueError):
            return None
    ext = field.rsplit(".", 1)[-1].lower()
    if names & _HOLDS.get(ext, set()):
        return ext
    return next((fmt for fmt, holds in _HOLDS.items() if names & holds), None)


def _to_float(arr: np.ndarray) -> np.ndarray:
    """PCM of any sample format -> float32 in [-1, 1) (u8 is offset binary: 128 is silence)."""
    if arr.dtype == np.uint8:
        return (arr.astype(np.float32) - 128.0) / 128.0
    if np.issubdtype(arr.dtype, np.integer):
        return arr.astype(np.float32) / np.float32(float(np.iinfo(arr.dtype).max) + 1.0)
    return arr.astype(np.float32)


def _interleaved(frame) -> np.ndarray:
    """``shape=(channels, n)`` float32 from a packed (interleaved) PyAV audio frame."""
    return _to_float(frame.to_ndarray().reshape(-1, frame.layout.nb_channels).T)


def header_samples(container, stream, rate: int) -> int | None:
    """Samples the stream holds at ``rate`` by its header, where the header is exact: MP4/MOV/M4A record the
    length the encoder was given (an AAC encoder pads its last frame to 1,024 samples and FFmpeg's decoder
    does not cut the padding off: a 1 s m4a at 16 kHz decodes to 16,384 samples). None for other containers
    (ADTS, MP3, Ogg... estimate their durations or trim padding themselves)."""
    if not ({"mov", "mp4"} & set(container.format.name.split(","))) or not stream.duration or not stream.time_base:
        return None
    return int(round(stream.duration * stream.time_base * rate))


_FORMAT_HINTS = {"aac": "aac", "mp3": "mp3"}  # raw streams FFmpeg's probe may not recognise when short


def _open(data: bytes, field: str):
    """A PyAV input container. A short raw ADTS stream (a few AAC frames, e.g. a re-encoded 60 ms clip) scores
    too low in FFmpeg's format probe to be recognised; a field named ``.aac`` (``.mp3``) is then opened as
    that format."""
    import av

    try:
        return av.open(io.BytesIO(data))
    except av.error.InvalidDataError:
        hint = _FORMAT_HINTS.get(field.rsplit(".", 1)[-1])
        if hint is None:
            raise
        return av.open(io.BytesIO(data), format=hint)


def read_pyav(data: bytes, *, field: str) -> tuple[np.ndarray, int]:
    """``shape=(channels, n)`` float32 and the rate, decoded by FFmpeg; MP4 end padding trimmed."""
    import av

    try:
        with _open(data, field) as container:
            if not container.streams.audio:
                raise Drop("audio.no_stream", "the file has no audio stream", field=field)
            stream = container.streams.audio[0]
            chunks: list[np.ndarray] = []
            first = None  # (rate, layout) of the first frame: what every frame is converted to
            key, converter = None, None
            for frame in container.decode(stream):
                first = first or (frame.sample_rate, frame.layout)
                same = (frame.sample_rate, frame.layout.name) == (first[0], first[1].name)
                if same and not (frame.format.is_planar and frame.layout.nb_channels > 2):
                    chunks.append(_to_float(frame.to_ndarray()) if frame.format.is_planar else _interleaved(frame))
                    continue
                # Converted to interleaved float at the first frame's rate and layout: PyAV's to_ndarray crashes the
                # process (SIGSEGV) on planar frames of 8+ channels (7.1 AAC or Opus), and a stream whose rate or
                # layout changes mid-way (joined ADTS files, broadcast captures) was joined at the wrong speed
                if key != (frame.sample_rate, frame.layout.name, frame.format.name):
                    chunks += [_interleaved(f) for f in converter.resample(None)] if converter else []
                    key = (frame.sample_rate, frame.layout.name, frame.format.name)
                    converter = av.AudioResampler(format="flt", layout=first[1], rate=first[0])
                chunks += [_interleaved(f) for f in converter.resample(frame)]
            if converter is not None:
                chunks += [_interleaved(f) for f in converter.resample(None)]
            rate = first[0] if first else stream.rate or stream.codec_context.sample_rate
            length = header_samples(container, stream, rate) if rate else None
    except (av.error.FFmpegError, ValueError) as exc:
        raise Drop("audio.corrupt", f"PyAV: {exc}", field=field) from None
    if not chunks:
        raise Drop("audio.empty", "no audio frames decoded", field=field)
    samples = np.concatenate(chunks, axis=1)
    return (samples[:, :length] if length else samples), int(rate or 0)


def read_audio(data: bytes, *, field: str) -> tuple[np.ndarray, int]:
    """``shape=(channels, n)`` float32 and the rate: libsndfile first, PyAV for what it does not read.

    A multichannel ``.opus`` field is read by PyAV too: libsndfile gives Ogg's (Vorbis) channel order
    (5.1 = FL, FC, FR, BL, BR, LFE), FFmpeg its own (FL, FR, FC, LFE, BL, BR), and a processed ``.opus`` is
    written back by FFmpeg: read by libsndfile, its channels came back shuffled."""
    got = read_soundfile(data)
    if got is not None and got[0].shape[0] > 2 and field.rsplit(".", 1)[-1] == "opus":
        got = None
    return got if got is not None else read_pyav(data, field=field)
