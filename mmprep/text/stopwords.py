"""Stop-word lists: spaCy's shipped lists (``en``, ``zh``, any spaCy language), NLTK's corpus, a file."""

from __future__ import annotations

import importlib
import importlib.util
from pathlib import Path

from mmprep.errors import ConfigError


def spacy_list(lang: str) -> frozenset[str]:
    """spaCy's list for ``lang`` (``spacy.lang.<lang>.stop_words``); no model needed.

    The module is read from spaCy's folder without importing spaCy, which imports thinc and torch
    (~1.4 s of one core: in the driver's pre-flight check, before any worker could start, and in every
    worker of a Chinese-only pipeline). The shipped lists are plain ``STOP_WORDS = set(...)`` files."""
    path = _shipped(lang)
    if path is not None:
        spec = importlib.util.spec_from_file_location(f"_mmprep_spacy_stop_words_{lang}", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return frozenset(module.STOP_WORDS)
    try:
        module = importlib.import_module(f"spacy.lang.{lang}.stop_words")
    except ImportError:
        raise ConfigError("lists", f"spaCy ships no stop-word list for {lang!r}") from None
    return frozenset(module.STOP_WORDS)


def _shipped(lang: str) -> Path | None:
    """``spacy/lang/<lang>/stop_words.py`` when spaCy is installed and ships it, found without importing spaCy."""
    if not (lang.isascii() and lang.isalpha() and lang.islower()):  # a language code, never a path
        return None
    spec = importlib.util.find_spec("spacy")
    for root in (spec.submodule_search_locations or ()) if spec else ():
        path = Path(root) / "lang" / lang / "stop_words.py"
        if path.is_file():
            return path
    return None


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
