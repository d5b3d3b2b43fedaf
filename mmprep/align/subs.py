"""Subtitle IO and validation: SRT and WebVTT (own block parser), ASS (pysubs2) and JSON / JSONL segments.

Times are integer milliseconds inside (pysubs2's unit), seconds as floats at the edges.
A :class:`SubDoc` keeps the parsed document so that re-timed cues are written back in the
input's own format (:func:`render`), with text and styling untouched.
"""

from __future__ import annotations

import bisect
import html
import json
import re
from dataclasses import dataclass, field
from typing import Any

SUB_FORMATS = ("srt", "vtt", "ass", "json", "jsonl")


class SubtitleError(ValueError):
    """The subtitle file cannot be read; ``reason`` is a stable code (``subtitle.unparseable``...)."""

    def __init__(self, reason: str, message: str):
        self.reason = reason
        super().__init__(message)


@dataclass
class Cue:
    start: int  # ms
    end: int  # ms
    text: str
    sign: bool = False  # not speech: a positioned or drawn ASS event (a sign, a title card), moved with the rest


@dataclass
class SubDoc:
    """Parsed subtitles. ``cues`` follow file order; ``raw`` is the pysubs2 file or the JSON data."""

    format: str
    cues: list[Cue]
    raw: Any = None
    json_times: str = "seconds"  # JSON only: "seconds" or "ms"
    skipped: list[int] = field(default_factory=list)  # JSON segments without usable times


def _to_text(data: bytes | str) -> str:
    """Text with ``\n`` line ends: pysubs2 parses from a string without newline translation, so a CRLF file's
    cue texts kept a ``\r`` (written back as stray line breaks)."""
    if isinstance(data, bytes):
        try:
            data = data.decode("utf-8-sig")  # the common case, without loading a charset detector
        except UnicodeDecodeError:
            from mmprep.errors import Drop
            from mmprep.stages.text.encoding import decode_text

            try:
                data = decode_text(data, field="srt")[0]
            except Drop as drop:  # a failed record like any bad file, not a dropped sample missing from the report
                raise SubtitleError(drop.reason, drop.message) from None
    return data.lstrip("\ufeff").replace("\r\n", "\n").replace("\r", "\n")


def sniff_format(text: str, hint: str | None = None) -> str:
    """The subtitle format: ``hint`` (a file extension) when it names one, else guessed from the text."""
    if hint:
        h = hint.rsplit(".", 1)[-1].lower()
        if h in SUB_FORMATS:
            return h
    head = text.lstrip("\ufeff \t\r\n")[:200]
    if head.startswith(("[", "{")):
        return "jsonl" if "\n" in head.strip() and head.startswith("{") and "}\n{" in text.replace("\r", "") else "json"
    if head.startswith("WEBVTT"):
        return "vtt"
    if head.startswith("[Script Info]"):
        return "ass"
    return "srt"


def _json_segments(text: str, fmt: str) -> tuple[list[dict[str, Any]], Any]:
    try:
        if fmt == "jsonl":
            segs = [json.loads(line) for line in text.splitlines() if line.strip()]
            return segs, segs
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise SubtitleError("subtitle.unparseable", f"JSON: {exc}") from None
    if isinstance(data, dict):
        segs = data.get("segments", data.get("cues"))
        if not isinstance(segs, list):
            raise SubtitleError("subtitle.unparseable", "JSON object without a 'segments' or 'cues' list")
        return segs, data
    if isinstance(data, list):
        return data, data
    raise SubtitleError("subtitle.unparseable", "JSON is neither a list of segments nor an object holding one")


def parse(data: bytes | str, hint: str | None = None) -> SubDoc:
    """Parse subtitles. Raises :class:`SubtitleError` (``subtitle.unparseable``) on a bad file.

    JSON segments are ``{"start": s, "end": s, "text": ...}`` (seconds), or ``start_ms``/``end_ms``.
    """
    text = _to_text(data)
    if not text.strip():
        raise SubtitleError("subtitle.empty", "the file is empty")
    fmt = sniff_format(text, hint)
    if fmt in ("json", "jsonl"):
        segs, raw = _json_segments(text, fmt)
        cues, skipped, unit = [], [], "seconds"
        if segs and isinstance(segs[0], dict) and "start_ms" in segs[0]:
            unit = "ms"
        for i, seg in enumerate(segs):
            try:
                if unit == "ms":
                    a, b = int(seg["start_ms"]), int(seg["end_ms"])
                else:
                    a, b = int(round(float(seg["start"]) * 1000)), int(round(float(seg["end"]) * 1000))
            except (KeyError, TypeError, ValueError):
                skipped.append(i)
                continue
            text = seg.get("text")
            cues.append(Cue(a, b, "" if text is None else str(text)))
        return SubDoc(fmt, cues, raw, unit, skipped)
    if fmt == "vtt":
        return _parse_timed(text, "vtt")
    if fmt == "srt":
        try:
            return _parse_timed(text, "srt")
        except SubtitleError:
            pass  # no SRT timing line: let pysubs2 try (it also reads other formats under a .srt name)
    import pysubs2

    try:
        subs = pysubs2.SSAFile.from_string(text)
    except Exception as exc:  # noqa: BLE001 - pysubs2 raises several types on bad files
        raise SubtitleError("subtitle.unparseable", f"{type(exc).__name__}: {exc}") from None
    if not subs.events and text.strip() and "-->" not in text and fmt != "ass":
        raise SubtitleError("subtitle.unparseable", "no cue timing lines found")
    cues = [Cue(int(e.start), int(e.end), e.plaintext, _is_sign(e)) for e in subs.events if not e.is_comment]
    return SubDoc(fmt, cues, subs)


_TIME = r"(-?)(?:(\d+):)?(\d{1,2}):(\d{1,2})[.,:](\d{1,3})"  # a leading "-": a negative time, kept and reported
_TIMING = re.compile(rf"^\s*{_TIME}[ \t]*-->[ \t]*{_TIME}(.*)$")
_VTT_BLOCKS = ("NOTE", "STYLE", "REGION")
_TAG = re.compile(r"<[^>]*>")
_ASS_OVERRIDE = re.compile(r"{\\[^}]*}")  # {\an8}, {\pos(..)} in SRT files


def _ms(sign: str, h: str | None, m: str, sec: str, frac: str) -> int:
    ms = ((int(h or 0) * 60 + int(m)) * 60 + int(sec)) * 1000 + int(frac.ljust(3, "0"))
    return -ms if sign else ms


def _parse_timed(text: str, fmt: str) -> SubDoc:
    """SRT and WebVTT by their block rules: a timing line starts a cue, the lines after it are its text,
    the line right before it is its number (SRT) or identifier (WebVTT). ``raw`` keeps the lines, so
    :func:`render` changes only the two times of each timing line; tags (``<font>``, ``<b>``, ``{\\an8}``),
    SRT coordinates, WebVTT settings, identifiers and NOTE / STYLE / REGION blocks stay as they were
    (pysubs2 dropped most of these, and turned WebVTT identifiers and notes into cue text)."""
    lines = text.split("\n")
    cues: list[Cue] = []
    timing: list[tuple[int, str]] = []  # (line index, what follows the end time) per cue
    payload: list[str] | None = None
    block_start = True
    skipping = False
    for i, line in enumerate(lines):
        if not line.strip():
            block_start, skipping, payload = True, False, None
            continue
        if block_start and fmt == "vtt":
            word = line.split(None, 1)[0]
            if (not cues and line.startswith("WEBVTT")) or word in _VTT_BLOCKS:
                skipping = True  # the header, comments, style sheets and regions are not cues
        block_start = False
        m = _TIMING.match(line)
        if skipping and not m:  # a timing line ends a header or note block that lacks its blank line
            continue
        skipping = False
        if m:
            if payload and payload[-1].strip().isdigit():  # no blank line before this cue: the number above
                payload.pop()  # is its SRT index / WebVTT identifier, not the last line of the cue before
                cues[-1].text = _plain("\n".join(payload), fmt)
            g = m.groups()
            cues.append(Cue(_ms(*g[0:5]), _ms(*g[5:10]), ""))
            timing.append((i, g[10]))
            payload = []
        elif payload is not None:  # else a cue number / identifier line, before its timing line
            payload.append(line)
            cues[-1].text = _plain("\n".join(payload), fmt)
            cues[-1].sign = bool(_SIGN_TAGS.search("\n".join(payload)))
    if not cues:
        if "-->" in text:
            raise SubtitleError("subtitle.unparseable", f"no {fmt.upper()} cue timing line could be read")
        if fmt == "vtt":
            raise SubtitleError("subtitle.empty", "the WebVTT file holds no cues")
        raise SubtitleError("subtitle.unparseable", "no cue timing lines found")
    return SubDoc(fmt, cues, {"lines": lines, "timing": timing})


def _plain(text: str, fmt: str) -> str:
    text = _ASS_OVERRIDE.sub("", _TAG.sub("", text))
    return html.unescape(text) if fmt == "vtt" else text


def _time(ms: int, sep: str) -> str:
    ms = max(0, int(ms))
    return f"{ms // 3_600_000:02d}:{ms // 60_000 % 60:02d}:{ms // 1000 % 60:02d}{sep}{ms % 1000:03d}"


_SIGN_TAGS = re.compile(r"{[^}]*\\(pos|move|org|clip|iclip)\(")  # placed on screen: signs, not dialogue


def _is_sign(event: Any) -> bool:
    return bool(event.is_drawing or _SIGN_TAGS.search(event.text))


def validate(cues: list[Cue], media_seconds: float | None = None) -> dict[str, Any]:
    """Count and list problems: ``overlap``, ``out_of_order``, ``negative``, ``backwards``, ``past_end``, ``empty``.

    Overlaps are looked for in start-time order, so cues merely listed out of order do not overlap; those are
    ``out_of_order``: the fewest cues that, taken out, leave the rest in start order (the cues off a longest
    non-decreasing run of starts), so one mistyped time flags that cue alone, not every cue after it.

    Returns ``{"counts": {problem: n}, "problems": [{"cue": i, "problem": ..., "detail": ...}]}``;
    cue indices are 0-based positions in file order, the list in that order.
    """
    problems: list[dict[str, Any]] = []
    end_ms = None if media_seconds is None else int(round(media_seconds * 1000))
    for i, c in enumerate(cues):
        if c.start < 0 or c.end < 0:
            problems.append({"cue": i, "problem": "negative", "detail": f"{c.start} ms -> {c.end} ms"})
        if c.end < c.start:
            problems.append({"cue": i, "problem": "backwards", "detail": f"ends {c.start - c.end} ms before it starts"})
        if not c.text.strip():
            problems.append({"cue": i, "problem": "empty", "detail": "no text"})
        if end_ms is not None and c.start >= end_ms:
            problems.append({"cue": i, "problem": "past_end", "detail": f"starts at {c.start} ms, media ends {end_ms}"})
    in_order = _ordered_run([c.start for c in cues])
    for i, c in enumerate(cues):
        if i not in in_order:
            problems.append({"cue": i, "problem": "out_of_order",
                             "detail": f"starts at {c.start} ms, out of start order with the cues around it"})
    prev_end, prev_i = None, None
    for i in sorted(range(len(cues)), key=lambda j: (cues[j].start, cues[j].end, j)):
        c = cues[i]
        if prev_end is not None and c.start < prev_end:
            problems.append({"cue": i, "problem": "overlap",
                             "detail": f"overlaps cue {prev_i} by {prev_end - c.start} ms"})
        if prev_end is None or c.end > prev_end:
            prev_end, prev_i = c.end, i
    problems.sort(key=lambda p: p["cue"])  # stable: a cue's problems keep the order above
    counts: dict[str, int] = {}
    for p in problems:
        counts[p["problem"]] = counts.get(p["problem"], 0) + 1
    return {"counts": counts, "problems": problems}


def _ordered_run(starts: list[int]) -> set[int]:
    """Indices of a longest non-decreasing subsequence of ``starts`` (patience sorting, O(n log n))."""
    tails: list[int] = []  # tails[k]: index ending the best run of length k + 1 found so far
    before = [-1] * len(starts)
    for i, s in enumerate(starts):
        k = bisect.bisect_right(tails, s, key=starts.__getitem__)
        before[i] = tails[k - 1] if k else -1
        if k == len(tails):
            tails.append(i)
        else:
            tails[k] = i
    run, i = set(), tails[-1] if tails else -1
    while i >= 0:
        run.add(i)
        i = before[i]
    return run


def render(doc: SubDoc, times: list[tuple[int, int]]) -> str:
    """The document with cue ``i`` moved to ``times[i]`` (ms), in the document's own format."""
    if len(times) != len(doc.cues):
        raise ValueError(f"{len(times)} times for {len(doc.cues)} cues")
    if doc.format in ("json", "jsonl"):
        segs = doc.raw if isinstance(doc.raw, list) else doc.raw.get("segments", doc.raw.get("cues"))
        usable = [i for i in range(len(segs)) if i not in set(doc.skipped)]
        for i, (a, b) in zip(usable, times, strict=True):
            if doc.json_times == "ms":
                segs[i]["start_ms"], segs[i]["end_ms"] = int(a), int(b)
            else:
                segs[i]["start"], segs[i]["end"] = round(a / 1000, 3), round(b / 1000, 3)
        if doc.format == "jsonl":
            return "".join(json.dumps(s, ensure_ascii=False) + "\n" for s in segs)
        return json.dumps(doc.raw, ensure_ascii=False, indent=1) + "\n"
    if isinstance(doc.raw, dict) and "timing" in doc.raw:  # SRT / WebVTT: only the timing lines change
        sep = "." if doc.format == "vtt" else ","
        lines = list(doc.raw["lines"])
        for (i, rest), (a, b) in zip(doc.raw["timing"], times, strict=True):
            lines[i] = f"{_time(a, sep)} --> {_time(b, sep)}{rest}"
        text = "\n".join(lines)
        if doc.format == "vtt" and not text.startswith("WEBVTT"):  # SRT-style .vtt: made valid WebVTT
            text = "WEBVTT\n\n" + text
        return text
    events = [e for e in doc.raw.events if not e.is_comment]
    for e, (a, b) in zip(events, times, strict=True):
        e.start, e.end = max(0, int(a)), max(0, int(b))
    return doc.raw.to_string(doc.format)
