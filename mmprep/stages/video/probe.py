"""``video.decode``: open the container with PyAV, decode the first frame, record what it holds."""

from __future__ import annotations

import io

from mmprep.errors import Drop
from mmprep.sample import Sample, fields_of, meta
from mmprep.stage import Stage, StageConfig, register


def probe(data: bytes, *, field: str) -> dict:
    """Duration, fps, frame count, size, codecs of a video held in memory; Drop if it does not decode."""
    import av

    try:
        with av.open(io.BytesIO(data)) as container:
            if not container.streams.video:
                raise Drop("video.no_stream", "no video stream", field=field)
            v = container.streams.video[0]
            info = {
                "codec": v.codec_context.name,
                "width": v.codec_context.width,
                "height": v.codec_context.height,
                "fps": float(v.average_rate) if v.average_rate else None,
                "frames": v.frames or None,
                "duration": float(container.duration / 1_000_000) if container.duration else None,
                "audio": [a.codec_context.name for a in container.streams.audio],
            }
            next(container.decode(v))
    except StopIteration:
        raise Drop("video.no_frames", "no frame could be decoded", field=field) from None
    except av.error.FFmpegError as exc:
        raise Drop("video.corrupt", f"PyAV: {exc}", field=field) from None
    return info


@register
class VideoDecode(Stage):
    """Check that each video opens and decodes; keep its bytes; store its probe in metadata."""

    name = "video.decode"
    reads = ("video",)
    writes = ("video",)

    class Config(StageConfig):
        pass

    def process(self, sample: Sample) -> Sample:
        for ext in fields_of(sample, "video"):
            info = probe(sample[ext], field=ext)
            meta(sample).setdefault("video", {})[ext] = info
            if info["duration"]:
                meta(sample).setdefault("duration", info["duration"])
        return sample
