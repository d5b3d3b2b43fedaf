"""Stop-word lists: spaCy's shipped lists (``en``, ``zh``, any spaCy language), NLTK's corpus, a file."""

from __future__ import annotations

import importlib
from pathlib import Path

from mmprep.errors import ConfigError


def spacy_list(lang: str) -> frozenset[str]:
    """spaCy's list for ``lang`` (``spacy.lang.<lang>.stop_words``); no model needed."""
    try:
        module = importlib.import_module(f"spacy.lang.{lang}.stop_words")
    except ImportError:
        raise ConfigError("lists", f"spaCy ships no stop-word list for {lang!r}") from None
    return frozenset(module.STOP_WORDS)


def nltk_list(language: str) -> frozenset[str]:
    """NLTK's stopwords corpus for ``language`` (e.g. ``english``); needs the 'stopwords' data package."""
    from nltk.corpus import stopwords

    from mmprep.text.tokenizers import nltk_resource

    nltk_resource("corpora/stopwords", "stopwords", key="nltk")
    try:
        return frozenset(stopwords.words(language))
    except OSError:
        raise ConfigError("nltk", f"NLTK's stopwords corpus has no list {language!r}") from None


def file_list(path: str) -> frozenset[str]:
    """One word per line, UTF-8; blank lines and lines starting with ``#`` are ignored."""
    try:
        lines = Path(path).read_text(encoding="utf-8-sig").splitlines()
    except OSError as exc:
        raise ConfigError("file", f"cannot read stop-word file {path}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise ConfigError("file", f"stop-word file {path} is not UTF-8") from None
    return frozenset(w.strip() for w in lines if w.strip() and not w.lstrip().startswith("#"))
