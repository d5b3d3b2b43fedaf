"""Alignment stages: subtitles re-timed to speech (``align.subtitles``), A/V sync (``align.av``)."""
