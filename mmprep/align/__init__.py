"""Time alignment: subtitle IO and validation, speech activity, offset/ratio/split search, confidence,
A/V sync, cue-to-frame mapping and the alignment report. numpy, soxr and PyAV only (no scipy)."""
