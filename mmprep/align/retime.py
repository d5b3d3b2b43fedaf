"""Re-time subtitles to the speech in an audio signal: the whole method, start to end.

1. speech activity (10 ms) and speech edges (1 ms), :mod:`mmprep.align.speech`;
2. ratio + offset by FFT cross-correlation over all offsets in ``+-max_offset``, standard ratios then
   a continuous refinement, :mod:`mmprep.align.search`;
3. optional splits (a new offset after an ad break), greedy on the per-cue score matrix;
4. polish: cue starts matched to speech onsets within 120 ms; robust least squares of
   (ratio, offset) without splits, then the offset moved by the median residual (per segment);
5. boundary refinement, when the cue starts scatter around the fitted model by more than
   ``refine_min_scatter`` (10th percentile of onset - model, below the median: human timing
   errors, not just detector lag): each cue start
   (end) snaps to the nearest utterance onset (offset) within ``refine_window``; a cue with no edge
   there keeps its placement. When the subtitles follow the model closely, snapping would only add
   the detector's own error (soft onsets are found late in noise), so the model placement is kept;
6. calibrated confidence and a status, :mod:`mmprep.align.confidence`.

Times are integer ms inside. The result is a JSON-able record plus the new cue times.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from mmprep.align import search
from mmprep.align.confidence import confidence, margin, prominence
from mmprep.align.speech import HOP_MS, Activity
from mmprep.align.stats import median, percentile
from mmprep.align.subs import Cue, validate

POLISH_ROUNDS = 2
POLISH_QUANTILE = 50  # final offset: this percentile of the onset residuals (50 = median)
LONGEST_CUE_MS = 30_000  # longer cues are not one utterance (speech-recognition segments reach 30 s)
# Fewer speech cues than this cannot be placed with confidence, however sharp the peak: a lone cue has no gap
# inside its span to be silent, so it fits any utterance at least as long as it, and a ratio and an offset fit
# any two utterances about as far apart as two cues. Measured on runs of consecutive utterances of 20-60 s
# tracks (300 seeds, SNR 4-20 dB, offsets +-10 s, a third at a framerate ratio), placements wrong but `ok`:
# 2 cues 17 of 129, 3 cues 3 of 276 (about what a confidence of 0.98 allows), 4 cues 0 of 243.
MIN_SPEECH_CUES = 3
# Below this margin (share of the cue frames) another offset more than 1 s away explains the speech about as
# well as the peak. Same set, 3 or more cues: 9 of 880 right placements fell below it; of the wrong ones the
# calibrated model passed, it caught 2 (0.032, 0.037) and missed 3 (0.146-0.189).
MIN_MARGIN = 0.05
AMBIGUOUS_CONFIDENCE = 0.5  # at most a coin toss between equally good placements


@dataclass(frozen=True)
class AlignParams:
    max_offset: float = 60.0  # s
    ratios: bool = True  # test the standard framerate ratios
    refine_ratio: bool = True
    max_splits: int = 1
    split_penalty: float = 2.0  # s of net overlap a split must gain
    refine_window: float = 0.25  # s; 0 disables boundary refinement
    refine_min_scatter: float = 0.045  # s; refine only when cue starts scatter this much around the model
    min_confidence: float = 0.5
    vad: str = "energy"


@dataclass
class Result:
    record: dict[str, Any]
    times: list[tuple[int, int]] = field(default_factory=list)  # new (start, end) ms per cue, file order


def _gaps(on: np.ndarray, off: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Silence before each onset and after each offset, in ms (inf at the ends)."""
    before = np.full(on.size, np.inf)
    before[1:] = on[1:] - off[:-1]
    after = np.full(off.size, np.inf)
    after[:-1] = on[1:] - off[:-1]
    return before, after


def _nearest(edges: np.ndarray, t: np.ndarray, within: float) -> tuple[np.ndarray, np.ndarray]:
    """Nearest edge to each ``t`` and whether it lies within ``within`` ms."""
    if edges.size == 0:
        return t.copy(), np.zeros(t.size, bool)
    i = np.clip(np.searchsorted(edges, t), 1, edges.size - 1) if edges.size > 1 else np.zeros(t.size, int)
    cand = np.stack([edges[np.maximum(i - 1, 0)], edges[i]])
    j = np.argmin(np.abs(cand - t[None, :]), axis=0)
    best = cand[j, np.arange(t.size)]
    return best.astype(np.float64), np.abs(best - t) <= within


def _coverage(act: Activity, times: list[tuple[int, int]]) -> tuple[float, float]:
    """(fraction of cue time over speech, fraction of speech time under cues)."""
    cm = np.zeros(act.mask.size, bool)
    for a, b in times:
        cm[max(0, a // HOP_MS) : max(0, b // HOP_MS)] = True
    cue_frames, speech_frames = cm.sum(), act.mask.sum()
    both = (cm & act.mask).sum()
    return (float(both / cue_frames) if cue_frames else 0.0, float(both / speech_frames) if speech_frames else 0.0)


def failed(reason: str, message: str, **extra: Any) -> Result:
    rec = {"status": "failed", "confidence": 0.0, "reasons": [reason], "message": message, "offset": None,
           "ratio": None, "splits": [], **extra}
    return Result(rec)


def _speech_cues(cues: list[Cue], reach_ms: float) -> list[int]:
    """The cues that stand for speech: with text and a positive duration, not signs (positioned or drawn
    ASS events), and not longer than ``LONGEST_CUE_MS`` unless every cue is (a 59 s sign over an episode
    would read as 59 s of speech and pull the match off). A cue starting after ``reach_ms`` (subtitle time)
    cannot meet the media at any offset or ratio searched: matching it would only make the cue mask, and
    the FFTs, as long as its time (a typo such as 99:00:00 meant gigabytes)."""
    spoken = [i for i, c in enumerate(cues)
              if c.end > c.start >= 0 and c.start <= reach_ms and c.text.strip() and not c.sign]
    short = [i for i in spoken if cues[i].end - cues[i].start <= LONGEST_CUE_MS]
    return short or spoken


def align(act: Activity, cues: list[Cue], params: AlignParams = AlignParams()) -> Result:
    """Re-time ``cues`` against ``act``. Never raises for bad input: returns a ``failed`` record."""
    check = validate(cues, act.seconds)
    base = {"cues": len(cues), "validation": check, "media_seconds": round(act.seconds, 3),
            "speech_seconds": round(act.speech_seconds, 3)}
    max_ms = int(params.max_offset * 1000)
    ratios = search.STANDARD_RATIOS if params.ratios else (1.0,)
    usable = _speech_cues(cues, (act.seconds * 1000 + max_ms) / min(ratios))
    if len(usable) < len(cues):
        base["cues_not_used"] = len(cues) - len(usable)  # moved with their neighbours, not matched to speech
    if not usable:
        return failed("subtitle.empty", "no cue with text and a positive duration within max_offset of the media",
                      **base)
    if not act.has_speech:
        return failed("audio.no_speech", "no speech found in the audio", **base)
    spans = [(cues[i].start, cues[i].end) for i in usable]
    longest = int(max(b for _, b in spans) * max(ratios) * 1.006) // HOP_MS + 2  # room for the ratio refinement
    corr = search.Correlator(act.mask, max_ms, longest)
    fit = search.best_fit(corr, spans, ratios=ratios, refine=params.refine_ratio)
    ratio = fit.ratio
    seg_starts, seg_offsets = [0], [fit.offset_ms]
    if params.max_splits > 0 and len(spans) >= 6:
        step = max(1, len(spans) * 2 * max_ms // HOP_MS // 2**24 + 1)  # keep the matrix under ~16M entries
        matrix, _ = search.cue_scores(act.mask, spans, ratio, max_ms, step=step)
        cuts = search.find_splits(matrix, max_splits=params.max_splits, penalty=params.split_penalty * 1000 / HOP_MS)
        if cuts:
            seg_starts = [0, *cuts]
            bounds = [*seg_starts, len(spans)]
            seg_offsets = [search.segment_offset(corr, spans[a:b], ratio).offset_ms
                           for a, b in zip(bounds[:-1], bounds[1:], strict=True)]
    seg_of = np.searchsorted(np.array(seg_starts), np.arange(len(spans)), side="right") - 1
    sub_start = np.array([a for a, _ in spans], np.float64)
    sub_end = np.array([b for _, b in spans], np.float64)
    off = np.array(seg_offsets)[seg_of]
    onsets, offsets = act.onsets.astype(np.float64), act.offsets.astype(np.float64)

    # polish (ratio, offset) on cue starts that sit close to a speech onset
    spread = 100.0  # ms: how far cue starts scatter (early side) around the model; see below
    for _ in range(POLISH_ROUNDS):
        start = ratio * sub_start + off
        near, ok = _nearest(onsets, start, 120.0)
        if ok.sum() < 4:
            break
        resid = near - start
        inl = ok & (np.abs(resid - median(resid[ok])) < 80.0)
        # early-side scatter: the detector finds soft onsets late, almost never early, so cue starts
        # well *after* their speech onset mean the subtitles' own timing is off (human jitter)
        spread = -percentile(resid[ok] - median(resid[ok]), 10)
        if len(seg_starts) == 1 and inl.sum() >= 8 and np.ptp(sub_start[inl]) > 5000:
            A = np.stack([sub_start[inl], np.ones(inl.sum())], axis=1)
            (r, o), *_ = np.linalg.lstsq(A, near[inl], rcond=None)
            if abs(r / ratio - 1) < 0.002:
                ratio, off = float(r), np.full(len(spans), float(o))
        else:
            for s in range(len(seg_starts)):
                m = inl & (seg_of == s)
                if m.sum() >= 3:
                    off[seg_of == s] += median(resid[m])
    if POLISH_QUANTILE is not None:
        # least squares follows the late tail of the residuals (soft onsets found late in noise);
        # the median does not. Measured: median error 15 -> 4 ms on 10-minute files at 8-20 dB.
        start = ratio * sub_start + off
        near, ok = _nearest(onsets, start, 120.0)
        if ok.sum() >= 4:
            resid = near - start
            inl = ok & (np.abs(resid - median(resid[ok])) < 80.0)
            for s in range(len(seg_starts)):
                m = inl & (seg_of == s)
                if m.sum() >= 3:
                    off[seg_of == s] += percentile(resid[m], POLISH_QUANTILE)
    start, end = ratio * sub_start + off, ratio * sub_end + off
    _, matched = _nearest(onsets, start, 100.0)

    # boundary refinement to utterance edges
    shift = np.zeros(len(spans))
    if params.refine_window > 0 and onsets.size and spread >= params.refine_min_scatter * 1000:
        w = params.refine_window * 1000
        before, after = _gaps(act.onsets, act.offsets)
        utt_on, utt_off = onsets[before >= 100], offsets[after >= 100]
        new_start, ok_s = _nearest(utt_on, start, w)
        new_end, ok_e = _nearest(utt_off, end, w)
        shift = np.where(ok_s, new_start - start, 0.0)
        start = np.where(ok_s, new_start, start)
        end = np.where(ok_e & (new_end > start + 100), new_end, np.maximum(end, start + 100))

    times = [(c.start, c.end) for c in cues]
    for j, i in enumerate(usable):
        times[i] = (int(round(start[j])), int(round(end[j])))
    for i in sorted(set(range(len(cues))) - set(usable)):
        # moved with the speech cue nearest in subtitle time: its segment's offset after polishing (the
        # search's first offset put a sign or an empty cue after an ad break off by the break's length)
        c = cues[i]
        o = off[int(np.argmin(np.abs(sub_start - c.start)))]
        times[i] = (int(round(ratio * c.start + o)), int(round(ratio * c.end + o)))

    B = max_ms // HOP_MS
    scores = search.fit_ratio(corr, spans, ratio).scores
    k = int(np.argmax(scores))
    total = float(np.abs(search.cue_mask(spans, ratio)).sum())
    # features of one offset for all cues, also with splits: a split must not flatter a wrong match
    feats = {"fit": float(scores[k] / max(total, 1.0)), "prominence": prominence(scores, k),
             "onset_match": float(matched.mean()), "margin": _margin(corr, spans, ratio, seg_starts, scores, total)}
    conf = confidence(feats)
    speech_cov, cue_cov = _coverage(act, [times[i] for i in usable])
    reasons: list[str] = []
    vetoes = [reason for reason, hit in (("align.too_few_cues", len(spans) < MIN_SPEECH_CUES),
                                         ("align.ambiguous_offset", feats["margin"] < MIN_MARGIN)) if hit]
    if conf < params.min_confidence or vetoes:
        reasons.append("align.low_confidence")
    reasons += vetoes
    if conf < params.min_confidence:
        if feats["onset_match"] < 0.5:
            reasons.append("align.few_cue_onsets_match_speech")
        if feats["prominence"] < 8:
            reasons.append("align.no_clear_offset")
    if vetoes:  # the calibrated model cannot see these: its features read the same for every rival placement
        conf = min(conf, AMBIGUOUS_CONFIDENCE)
    if abs(k - B) >= B - 1:
        reasons.append("align.offset_at_bound")
    status = "ok" if not reasons else "low_confidence"
    segs = [{"cue": int(usable[c]), "offset": round(float(off[c]) / 1000, 4)} for c in seg_starts]
    rec = {
        **base,
        "status": status,
        "confidence": round(conf, 4),
        "reasons": reasons,
        "offset": round(float(off[0]) / 1000, 4),
        "ratio": round(float(ratio), 6),
        "splits": segs[1:],
        "features": {k_: round(v, 4) for k_, v in feats.items()},
        "speech_coverage": round(speech_cov, 4),
        "cue_coverage": round(cue_cov, 4),
        "residuals": {**_residual_stats(shift), "early_scatter_ms": round(spread, 1)},
    }
    return Result(rec, times)


def _margin(corr: search.Correlator, spans: list[tuple[int, int]], ratio: float, seg_starts: list[int],
            scores: np.ndarray, total: float) -> float:
    """:func:`~mmprep.align.confidence.margin` of the placement; after splits, the smallest over the segments,
    each against its own scores (over all cues, the other segment's offset is a rival peak by design)."""
    if len(seg_starts) == 1:
        return margin(scores, int(np.argmax(scores)), total)
    bounds = [*seg_starts, len(spans)]
    out = []
    for a, b in zip(bounds[:-1], bounds[1:], strict=True):
        seg = search.fit_ratio(corr, spans[a:b], ratio).scores
        out.append(margin(seg, int(np.argmax(seg)), float(np.abs(search.cue_mask(spans[a:b], ratio)).sum())))
    return min(out)


def _residual_stats(shift: np.ndarray) -> dict[str, float]:
    """Boundary-refinement shifts (ms): how far cue starts moved after the global fit."""
    a = np.abs(shift)
    if a.size == 0:
        return {"median_ms": 0.0, "p95_ms": 0.0, "max_ms": 0.0}
    return {"median_ms": round(median(a), 1), "p95_ms": round(percentile(a, 95), 1),
            "max_ms": round(float(a.max()), 1)}
