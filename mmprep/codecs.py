"""Field value -> bytes, by extension. The shard writer's only way to turn samples into members.

Nothing here pickles: arrays go through ``numpy.save(allow_pickle=False)``, structures through JSON.
"""

from __future__ import annotations

import io
import json
from typing import Any

import numpy as np

from mmprep.errors import Drop
from mmprep.reproducible import pinned_ogg, pinned_wav
from mmprep.sample import Audio, Image

_CV2_EXT = {"jpg": ".jpg", "jpeg": ".jpg", "png": ".png", "webp": ".webp", "bmp": ".bmp", "tif": ".tiff",
            "tiff": ".tiff", "gif": ".gif"}
_SF_FORMAT = {"wav": ("WAV", "PCM_16"), "flac": ("FLAC", "PCM_16"), "ogg": ("OGG", "VORBIS")}  # default subtypes
SOUNDFILE_EXTS = tuple(_SF_FORMAT)  # audio fields written losslessly (soundfile)
# input subtypes each container can hold as they are (an MP3 read by libsndfile is MPEG_LAYER_III: not kept)
_SF_KEEP = {"WAV": {"PCM_U8", "PCM_16", "PCM_24", "PCM_32", "FLOAT", "DOUBLE"}, "FLAC": {"PCM_S8", "PCM_16", "PCM_24"},
            "OGG": {"VORBIS", "OPUS"}}
_AV_FORMAT = {"mp3": ("mp3", "libmp3lame"), "m4a": ("mp4", "aac"), "aac": ("adts", "aac"), "opus": ("ogg", "libopus")}
# what each lossy format holds: its encoder's sample rates (Hz) and most channels
_AAC_RATES = (7350, 8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000, 64000, 88200, 96000)
_AV_RATES = {"mp3": (8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000), "m4a": _AAC_RATES,
             "aac": _AAC_RATES, "opus": (8000, 12000, 16000, 24000, 48000)}
_AV_CHANNELS = {"mp3": 2, "m4a": 8, "aac": 8, "opus": 8}
FLAC_MAX_CHANNELS = 8
_AV_LAYOUTS = {1: "mono", 2: "stereo", 3: "3.0", 4: "quad", 5: "5.0", 6: "5.1", 7: "6.1", 8: "7.1"}  # FFmpeg order


def misfit(ext: str, rate: int, channels: int) -> str | None:
    """Why the audio format ``ext`` cannot hold audio at ``rate`` Hz with ``channels`` channels (Opus at 44.1 kHz,
    MP3 in 6 channels, FLAC in 16), or None when it can (or when ``ext`` is not an audio format mmprep writes)."""
    last = _last(ext)
    if last == "flac" and channels > FLAC_MAX_CHANNELS:
        return f".flac holds at most {FLAC_MAX_CHANNELS} channels, not {channels}"
    if last not in _AV_FORMAT:
        return None
    if rate not in _AV_RATES[last]:
        return f".{last} holds {', '.join(str(r) for r in _AV_RATES[last])} Hz, not {rate} Hz"
    if channels > _AV_CHANNELS[last]:
        return f".{last} holds at most {_AV_CHANNELS[last]} channels, not {channels}"
    return None


def _canon(fmt: str) -> str:
    return {"jpeg": "jpg", "tif": "tiff"}.get(fmt, fmt)


def _last(ext: str) -> str:
    return ext.rsplit(".", 1)[-1].lower()


def encode_image(pixels: np.ndarray, ext: str, *, jpeg_quality: int = 95, webp_quality: int = 90,
                 png_compression: int = 3) -> bytes:
    """RGB(A) or grey uint8 pixels -> encoded bytes in the format the extension names."""
    import cv2

    last = _last(ext)
    if last not in _CV2_EXT:
        raise Drop("encode.unsupported", f"no image encoder for .{ext}", field=ext)
    if pixels.dtype != np.uint8:
        raise Drop("encode.dtype", f"image .{ext} holds {pixels.dtype}, needs uint8 (store floats as .npy)", field=ext)
    if pixels.ndim == 3 and pixels.shape[2] == 3:
        pixels = cv2.cvtColor(pixels, cv2.COLOR_RGB2BGR)
    elif pixels.ndim == 3 and pixels.shape[2] == 4:
        if last in ("jpg", "jpeg"):
            pixels = cv2.cvtColor(pixels, cv2.COLOR_RGBA2BGR)
        else:
            pixels = cv2.cvtColor(pixels, cv2.COLOR_RGBA2BGRA)
    params: list[int] = []
    if last in ("jpg", "jpeg"):
        params = [cv2.IMWRITE_JPEG_QUALITY, jpeg_quality]
    elif last == "webp":
        params = [cv2.IMWRITE_WEBP_QUALITY, webp_quality]
    elif last == "png":
        params = [cv2.IMWRITE_PNG_COMPRESSION, png_compression]
    ok, buf = cv2.imencode(_CV2_EXT[last], pixels, params)
    if not ok:
        raise Drop("encode.failed", f"OpenCV could not encode .{ext}", field=ext)
    return buf.tobytes()


def encode_audio(audio: Audio, ext: str) -> bytes:
    """Processed audio -> bytes in the format the field names.

    WAV/FLAC/OGG go through libsndfile at the input's precision when the container holds it
    (``audio.info["subtype"]``, set by ``audio.decode``: a 24-bit or float WAV stays so; float into FLAC
    becomes 24-bit) and 16-bit PCM otherwise. MP3/M4A/AAC/Opus fields are re-encoded with PyAV (lossy);
    a rate the encoder refuses is ``encode.unsupported`` for that field only (list it in
    ``output.optional``, or decode with ``audio.decode output: flac`` for one lossless field)."""
    last = _last(ext)
    if last in _AV_FORMAT:
        return _encode_av(audio, ext)
    if last not in _SF_FORMAT:
        raise Drop("encode.unsupported", f"no audio encoder for .{ext} (use wav, flac, ogg, mp3, m4a, aac, opus)",
                   field=ext)
    import soundfile as sf

    why = misfit(ext, audio.rate, audio.samples.shape[0] if audio.samples.ndim == 2 else 1)
    if why:
        raise Drop("encode.unsupported", f"{why}: write wav", field=ext)
    fmt, subtype = _SF_FORMAT[last]
    kept = audio.info.get("subtype")
    if kept in ("FLOAT", "DOUBLE") and fmt == "FLAC":
        kept = "PCM_24"
    if kept in _SF_KEEP[fmt]:
        subtype = kept
    data = audio.samples.T if audio.samples.ndim == 2 else audio.samples
    buf = io.BytesIO()
    sf.write(buf, np.clip(data, -1.0, 1.0), audio.rate, format=fmt, subtype=subtype)
    if fmt == "OGG":
        return pinned_ogg(buf.getvalue())
    return pinned_wav(buf.getvalue()) if fmt == "WAV" else buf.getvalue()


def held_rate(ext: str, rate: int) -> int:
    """The rate at which the lossy format ``ext`` stores audio of ``rate`` Hz: ``rate`` itself when it holds it,
    else the lowest one above (the highest one when none is above): 12,345 Hz -> 16 kHz AAC, 192 kHz -> 96 kHz."""
    rates = _AV_RATES[_last(ext)]
    return rate if rate in rates else min((r for r in rates if r > rate), default=max(rates))


def _encode_av(audio: Audio, ext: str) -> bytes:
    """MP3 (LAME), AAC (ADTS or in MP4 for .m4a) or Opus (in Ogg) through PyAV, from float32 samples; up to
    8 channels (AAC, Opus) in FFmpeg's channel order for that count (6 = 5.1)."""
    import av

    container, codec = _AV_FORMAT[_last(ext)]
    x = np.clip(audio.samples if audio.samples.ndim == 2 else audio.samples[None], -1.0, 1.0).astype(np.float32)
    why = misfit(ext, audio.rate, x.shape[0])
    if why:
        raise Drop("encode.unsupported", f"{why}: write wav or flac", field=ext)
    layout = _AV_LAYOUTS[x.shape[0]]
    buf = io.BytesIO()
    try:
        # bitexact: the Ogg serial number of an .opus is not random, and no encoder version is written
        with av.open(buf, mode="w", format=container, options={"fflags": "+bitexact"}) as out:
            stream = out.add_stream(codec, rate=audio.rate)
            stream.layout = layout
            # Opus takes 20 ms frames; a shorter last one is trimmed at the end by the Ogg granule position
            # (zero-padding it here made every re-encoded .opus up to 20 ms longer)
            step = audio.rate // 50 if codec == "libopus" else 1152
            for start in range(0, x.shape[1], step):
                chunk = x[:, start : start + step]
                # interleaved float (PyAV mishandles planar frames of 8 channels); PyAV converts to the
                # encoder's own sample format
                frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(chunk.T).reshape(1, -1), format="flt",
                                                   layout=layout)
                frame.sample_rate, frame.pts = audio.rate, start
                for packet in stream.encode(frame):
                    out.mux(packet)
            for packet in stream.encode():
                out.mux(packet)
    except (av.error.FFmpegError, ValueError) as exc:
        raise Drop("encode.unsupported", f"PyAV cannot write .{ext} at {audio.rate} Hz: {exc}", field=ext) from None
    return buf.getvalue()


def npy_bytes(array: np.ndarray, dtype: str = "keep") -> bytes:
    if array.dtype == object:
        raise Drop("encode.object_array", "object arrays would need pickle; refusing")
    if dtype != "keep" and np.issubdtype(array.dtype, np.floating):
        array = array.astype(dtype)
    buf = io.BytesIO()
    np.save(buf, np.ascontiguousarray(array), allow_pickle=False)
    return buf.getvalue()


def encode_field(ext: str, value: Any, encoding: Any = None) -> bytes:
    """Bytes for one field. ``encoding`` is an :class:`~mmprep.config.EncodingSpec` (or None)."""
    q = encoding
    last = _last(ext)
    if isinstance(value, bytes):
        return value
    if isinstance(value, Image):
        if value.source is not None and _canon(value.format or last) == _canon(last):
            return value.source
        return encode_image(value.pixels, ext, **_image_kw(q))
    if isinstance(value, Audio):
        if value.source is not None and value.format == last:
            return value.source
        return encode_audio(value, ext)
    if isinstance(value, np.ndarray):
        if last == "npy":
            return npy_bytes(value, q.npy_dtype if q else "keep")
        if last in _CV2_EXT:
            return encode_image(value, ext, **_image_kw(q))
        raise Drop("encode.unsupported", f"array in field .{ext}; name it .npy", field=ext)
    if isinstance(value, str):
        return value.encode("utf-8")
    if last == "json" or isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False, sort_keys=True, default=_json_default).encode("utf-8")
    if isinstance(value, (int, float, np.integer, np.floating)):
        return str(value).encode()
    raise Drop("encode.unsupported", f"cannot encode {type(value).__name__} as .{ext}", field=ext)


def _image_kw(q: Any) -> dict[str, int]:
    if q is None:
        return {}
    return {"jpeg_quality": q.jpeg_quality, "webp_quality": q.webp_quality, "png_compression": q.png_compression}


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    raise TypeError(f"{type(obj).__name__} is not JSON serializable")


def to_json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, sort_keys=True, default=_json_default)
