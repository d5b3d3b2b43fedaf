"""One exception hierarchy for the whole package.

`ConfigError` is raised before any work starts and maps to exit code 2 in the CLI.
`Drop` is raised by a stage for one sample (or one optional field of it); the executor turns it into
a line in ``errors.jsonl`` and a count in ``stats.json``. It never escapes a build.
"""

from __future__ import annotations


class MmprepError(Exception):
    """Base of every error mmprep raises on purpose."""


class ConfigError(MmprepError):
    """Bad configuration: a key, a value, a missing resource. Fails before any work starts."""

    def __init__(self, key: str, message: str):
        self.key = key
        self.message = message
        super().__init__(f"{key}: {message}" if key else message)


class MissingDependency(ConfigError):
    """A stage needs a package or a resource (model, corpus) that is not installed."""

    def __init__(self, key: str, what: str, hint: str):
        super().__init__(key, f"needs {what}, which is not installed ({hint})")


class Drop(MmprepError):
    """Drop one sample, or only one of its fields when ``field`` is set and declared optional.

    ``reason`` is a short stable code (``image.corrupt``, ``text.undecodable``...) that users can
    group by; ``message`` says what exactly was wrong with this sample. ``transient``: the same input
    may succeed later (a download timed out): the outcome is not cached, and a rerun tries again.
    """

    def __init__(self, reason: str, message: str = "", *, field: str | None = None, transient: bool = False):
        self.reason = reason
        self.message = message
        self.field = field
        self.transient = transient
        super().__init__(f"{reason}: {message}" if message else reason)
