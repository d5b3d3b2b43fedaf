"""The wire under ``fetch``: reading a body within a time limit, URLs urllib3 can send, retries, and
which failures are worth trying again."""

from __future__ import annotations

import functools
import itertools
import os
import re
import socket
import threading
from typing import Any

from mmprep.errors import Drop


def read_within(resp: Any, length: int | None, max_bytes: int, time_limit: float) -> bytes:
    """The body (:func:`_read`), in one read of it where it can (a read per arriving packet costs more CPU
    than the decode after it); ``time_limit`` by a timer that shuts the socket, which ends a read that
    a slow server drips."""
    sock = _socket_of(resp)  # taken now: by the time the timer fires, its descriptor number may be reused
    timer = threading.Timer(time_limit, _shut, (sock,))
    timer.start()
    try:
        return _read(resp, length, max_bytes)
    finally:
        timer.cancel()
        timer.join()  # a shutdown under way ends before the duplicate closes (and its number is reused)
        if sock is not None:
            sock.close()  # our duplicate only: the connection stays open


def _read(resp: Any, length: int | None, max_bytes: int) -> bytes:
    """The body: in one read of its ``Content-Length``, else in reads of 1 MiB up to just past
    ``max_bytes`` (http.client allocates each read's full size up front: one read of ``max_bytes``
    would zero 64 MiB per URL)."""
    if length is not None:
        return resp.read(length)
    chunks, size = [], 0
    while size <= max_bytes and (chunk := resp.read(min(1 << 20, max_bytes + 1 - size))):
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)


def check_url(url: str) -> None:
    """Raise ValueError for a URL urllib3 cannot send: unparseable (``LocationParseError`` is a
    ValueError), or with a control character or space left after it percent-encodes the path."""
    from urllib3.util import parse_url

    if _UNSENDABLE.search(parse_url(url).url):
        raise ValueError("a space or control character outside the path")


_UNSENDABLE = re.compile(r"[\x00-\x20\x7f]")


@functools.cache
def retry_class() -> type:
    """urllib3's Retry, but the first retry waits ``backoff`` too (urllib3 retries at once the first
    time, so a 429 or 503 was asked again with no pause), then 2x, 4x..."""
    import urllib3

    class Retry(urllib3.Retry):
        def get_backoff_time(self) -> float:
            errors = len(list(itertools.takewhile(lambda h: h.redirect_location is None, reversed(self.history))))
            return 0.0 if not errors else float(min(self.backoff_max, self.backoff_factor * 2 ** (errors - 1)))

    return Retry


def _socket_of(resp: Any) -> socket.socket | None:
    """A duplicate of the response's socket (its own socket object is private to urllib3), or None."""
    try:
        return socket.socket(fileno=os.dup(resp.fileno()))
    except (OSError, ValueError):  # no socket under it (the body is in already)
        return None


def _shut(sock: socket.socket | None) -> None:
    """End a read that is still going at ``time_limit`` (from the timer's thread): shutting down the
    duplicate shuts the connection down, so the blocked read returns."""
    if sock is None:
        return
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass


def transient_drop(url: str, exc: BaseException | None) -> Drop:
    import urllib3

    timeout = isinstance(exc, (TimeoutError, urllib3.exceptions.TimeoutError)) and not isinstance(
        exc, urllib3.exceptions.NewConnectionError)  # a refused connection is one too, for urllib3
    what = " ".join(str(exc).split()) or type(exc).__name__
    return Drop("fetch.timeout" if timeout else "fetch.unavailable", f"{url}: {what}", transient=True)
