"""Test media made in code (no downloads): images, tones, subtitles, videos, and whole corpora.

Shipped with the package, as Lhotse does with its dummies, so users' own tests can use them too.
"""
