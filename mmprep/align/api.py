"""The two entry points the stages and the CLI share: subtitles against audio, and A/V sync of a video."""

from __future__ import annotations

from typing import Any

import numpy as np

from mmprep.align.retime import AlignParams, align, failed
from mmprep.align.speech import activity
from mmprep.align.subs import SubDoc, SubtitleError, parse, render


def align_subtitles(samples: np.ndarray, rate: int, subtitles: bytes | str, *, hint: str | None = None,
                    params: AlignParams = AlignParams(), plot: str = "flagged") -> tuple[dict[str, Any], str | None,
                                                                                        SubDoc | None, list]:
    """Re-time subtitles to ``samples`` (mono, ``rate`` Hz).

    Returns ``(record, text, doc, times)``: the JSON-able record, the re-timed file in the input's
    format (None when the subtitles could not be read or placed), the parsed document and the new
    ``(start_ms, end_ms)`` per cue. ``plot``: ``flagged`` (plot data for non-ok records), ``all``, ``none``.
    """
    try:
        doc = parse(subtitles, hint)
    except SubtitleError as exc:
        return failed(exc.reason, str(exc)).record, None, None, []
    if not 1000 <= rate <= 384_000:  # audio.decode's plausible range; 0 (no rate in the stream) made soxr raise
        return failed("audio.bad_rate", f"implausible sample rate {rate} Hz").record, None, doc, []
    bad = samples.size - int(np.isfinite(samples).sum())
    if bad:  # one NaN spreads through the band-pass block by block: the file read as "no speech"
        return failed("audio.nonfinite", f"the audio holds {bad} NaN or infinite samples").record, None, doc, []
    act = activity(samples, rate, method=params.vad)
    result = align(act, doc.cues, params)
    rec = result.record
    rec["format"] = doc.format
    if doc.skipped:
        rec.setdefault("validation", {}).setdefault("counts", {})["unreadable_segment"] = len(doc.skipped)
    text = render(doc, result.times) if result.times else None
    if plot == "all" or (plot == "flagged" and rec["status"] != "ok"):
        from mmprep.align.report import spans

        rec["plot"] = {"speech": spans(act.mask), "before": [[c.start / 1000, c.end / 1000] for c in doc.cues][:3000],
                       "after": [[a / 1000, b / 1000] for a, b in result.times][:3000]}
    return rec, text, doc, result.times


def av_sync(data: bytes, *, max_offset: float = 1.0) -> dict[str, Any]:
    """A/V offset record of a video file's bytes; never raises for bad media (``failed`` instead)."""
    import av

    from mmprep.align.avsync import NoStream, estimate, read_video

    try:
        sig = read_video(data)
    except NoStream as exc:
        return {"status": "failed", "offset": None, "confidence": 0.0, "reasons": [exc.reason]}
    except (av.error.FFmpegError, ValueError) as exc:
        return {"status": "failed", "offset": None, "confidence": 0.0, "reasons": ["av.unreadable"],
                "message": f"{type(exc).__name__}: {exc}"}
    return estimate(sig, max_offset=max_offset)
