"""``fetch``: download the URL in a field (a manifest column) into a media field, many at a time.

What img2dataset does for URL lists, as one stage in front of the others: a manifest row
``{"key": "a", "url": "https://.../a.jpg", "txt": "a caption"}`` becomes a sample with ``jpg`` (named
from the response's ``Content-Type``, else from the URL's extension, or ``out`` when set), which
``image.decode``, ``image.resize``... then take like any local file.

- **Many at a time**: each batch of samples (``execution.batch_size``) is fetched by ``concurrency``
  threads per worker, over pooled keep-alive connections (urllib3).
- **No hang at the end**: ``timeout`` bounds each connect and each read, ``time_limit`` the whole
  download of one URL (a server that drips a byte at a time is cut off), and ``Retry-After`` is not
  obeyed (a server asking for an hour would stall the build): retries back off ``backoff`` x 2^n s.
- **Retry only what failed, and only what may succeed later**: timeouts, connection errors, 408, 429
  and 5xx are retried ``retries`` times, then the sample is dropped as ``fetch.timeout`` or
  ``fetch.unavailable``, marked transient: a rerun of the same command fetches those URLs again
  (and nothing else). A 404, a bad URL or a too-large body is permanent (``fetch.http_status``,
  ``fetch.bad_url``, ``fetch.too_large``, ``fetch.empty``, ``fetch.unknown_type``,
  ``fetch.bad_encoding``) and not retried.
- **Opt-outs obeyed**: a response whose ``X-Robots-Tag`` header says ``noai``, ``noimageai``, ``noindex``
  or ``noimageindex`` (``disallowed_header_directives``, as img2dataset), for every crawler or for
  this one, is dropped as ``fetch.opted_out`` without reading its body. robots.txt is not read.
- **Fetched once**: the downloaded bytes go into the content cache (keyed by the URL and these
  parameters), so a change to a later stage, or a re-shard, downloads nothing.

Metadata ``fetch``: ``url``, ``final_url`` (after redirects), ``status``, ``content_type``, ``bytes``;
the field's source path (as ``errors.jsonl`` shows it for later stages) is the URL.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import mimetypes
import os
import re
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import urljoin, urlsplit

from pydantic import Field, field_validator

from mmprep import __version__
from mmprep.errors import Drop
from mmprep.sample import SOURCE, Sample, ext_modality, meta
from mmprep.stage import Stage, StageConfig, register

_RETRY_STATUS = (408, 429, 500, 502, 503, 504)
# Content-Type -> field name where the standard table names another (or none)
_TYPES = {"image/jpeg": "jpg", "image/jpg": "jpg", "image/pjpeg": "jpg", "audio/mpeg": "mp3", "audio/mp3": "mp3",
          "audio/wav": "wav", "audio/x-wav": "wav", "audio/wave": "wav", "audio/vnd.wave": "wav",
          "audio/flac": "flac", "audio/x-flac": "flac", "audio/ogg": "ogg", "audio/opus": "opus",
          "audio/mp4": "m4a", "audio/x-m4a": "m4a", "audio/aac": "aac", "video/quicktime": "mov",
          "video/x-matroska": "mkv", "video/webm": "webm", "video/x-msvideo": "avi", "text/plain": "txt",
          "application/x-subrip": "srt", "text/vtt": "vtt", "image/tiff": "tif"}


@register
class Fetch(Stage):
    """Download the URL in ``field`` into a media field (named from the response's Content-Type)."""

    name = "fetch"
    version = "1"
    writes = ("image", "audio", "video", "text", "subtitle")
    cacheable = True
    batched = True
    io_bound = True  # first in a pipeline, it fetches the next batch while the other stages work

    class Config(StageConfig):
        field: str = Field("url", description="The field that holds the URL (a manifest column, or a .url file).")
        out: str = Field("auto", description="Field to write: 'auto' names it from the response's Content-Type, "
                                             "else from the URL's extension (jpg, png, wav, mp4...).")
        keep_url: bool = Field(True, description="Keep the URL field in the sample (written as its own member).")
        timeout: float = Field(10.0, gt=0, le=600, description="Seconds for each connect and each read.")
        time_limit: float = Field(60.0, gt=0, le=3600, description="Seconds for the whole download of one URL.")
        retries: int = Field(2, ge=0, le=10, description="Retries after a timeout, a connection error, 408, 429 "
                                                        "or 5xx.")
        backoff: float = Field(0.5, ge=0, le=60, description="Seconds before the first retry, doubling after.")
        max_bytes: int = Field(64 * 2**20, ge=1, description="Larger bodies are dropped (fetch.too_large).")
        concurrency: int = Field(16, ge=1, le=256, description="Downloads at once per worker.")
        per_host: int = Field(0, ge=0, le=256, description="Downloads at once per worker from one host (0: as "
                                                           "many as concurrency): be polite to one CDN.")
        user_agent: str = Field(f"mmprep/{__version__}", min_length=1, description="User-Agent header.")
        schemes: list[str] = Field(["http", "https"], min_length=1, description="URL schemes allowed.")
        disallowed_header_directives: list[str] = Field(
            ["noai", "noimageai", "noindex", "noimageindex"],
            description="X-Robots-Tag directives that opt a URL out, for every crawler or for the product token "
                        "of user_agent (img2dataset's default): its sample is dropped (fetch.opted_out), the "
                        "body unread. [] fetches them.")

        @field_validator("disallowed_header_directives")
        @classmethod
        def _directives(cls, value: list[str]) -> list[str]:
            bad = [d for d in value if not _DIRECTIVE.fullmatch(d)]
            if bad:
                raise ValueError(f"{bad} are not X-Robots-Tag directives (letters, digits, _ and -)")
            return sorted({d.lower() for d in value})

        @field_validator("field", "out")
        @classmethod
        def _field_name(cls, value: str) -> str:
            from mmprep.corpus import FIELD_NAME

            if not FIELD_NAME.match(value):
                raise ValueError(f"{value!r} is not a field name (lowercase letters, digits, _ and inner dots)")
            return value

        @field_validator("user_agent")
        @classmethod
        def _agent(cls, value: str) -> str:
            if not _PRODUCT.match(value):
                raise ValueError(f"{value!r} does not start with a product token (name/version, e.g. mybot/1.0)")
            return value

        @field_validator("schemes")
        @classmethod
        def _schemes(cls, value: list[str]) -> list[str]:
            bad = [s for s in value if s not in ("http", "https")]
            if bad:
                raise ValueError(f"only http and https can be fetched, not {bad}")
            return value

    def params(self) -> dict[str, Any]:
        """How the bytes are fetched (threads, timeouts, retries, User-Agent) is not in the cache key:
        changing it downloads nothing again (but the opt-outs obeyed, and the crawler name they use)."""
        kept = ("field", "out", "keep_url", "max_bytes", "schemes")
        params = {k: v for k, v in super().params().items() if k in kept}
        if self.config.disallowed_header_directives:  # [] fetches as before they were obeyed: the same key
            params.update(disallowed_header_directives=self.config.disallowed_header_directives,
                          crawler=self._crawler())
        return params

    def _crawler(self) -> str:
        """The name X-Robots-Tag directives for one crawler use for this one: user_agent's product token."""
        return _PRODUCT.match(self.config.user_agent)[0].lower()

    def creates(self) -> tuple[tuple[str, str], ...]:
        return (("out", self.config.out),) if self.config.out != "auto" else ()

    def applies(self, sample: Sample) -> bool:
        return self.config.field in sample

    def setup(self) -> None:
        import logging

        import urllib3

        logging.getLogger("urllib3.connectionpool").setLevel(logging.ERROR)  # a line per retry: the errors say it

        cfg = self.config
        # no total: it would count redirects too (retries: 0 followed none, an http -> https hop and a
        # 503 after it took the one retry); each kind of failure gets ``retries``, redirects their own 5
        n = cfg.retries
        retry = _retry_class()(total=None, connect=n, read=n, status=n, other=n, redirect=5,
                               status_forcelist=_RETRY_STATUS, allowed_methods=["GET"], backoff_factor=cfg.backoff,
                               respect_retry_after_header=False, raise_on_status=False, raise_on_redirect=False)
        self._options = {"num_pools": 64, "maxsize": cfg.concurrency, "retries": retry, "block": False,
                         "timeout": urllib3.Timeout(connect=cfg.timeout, read=cfg.timeout),
                         "headers": {"User-Agent": cfg.user_agent}}
        self._pool = urllib3.PoolManager(**self._options)
        self._proxied: dict[str, Any] = {}  # proxy URL -> its ProxyManager
        self._lock = threading.Lock()
        self._hosts: dict[str, threading.BoundedSemaphore] = {}  # per_host: a semaphore per host

    def check(self) -> None:
        """A proxy in the environment that urllib3 cannot use (``socks5://``) fails before any work: else
        every URL would fail, as a transient error retried on every rerun."""
        import urllib.request

        from mmprep.errors import ConfigError

        for scheme, proxy in urllib.request.getproxies().items():
            if scheme in self.config.schemes and "://" in proxy and urlsplit(proxy).scheme not in ("http", "https"):
                raise ConfigError(f"{scheme.upper()}_PROXY", f"{urlsplit(proxy).scheme}:// proxies are not supported "
                                  "by fetch (http:// and https:// ones are); unset it or point it at an http proxy")

    def _gate(self, host: str) -> Any:
        """What a download from ``host`` holds while it runs: a semaphore of ``per_host`` places per host,
        or nothing to wait for."""
        if not self.config.per_host:
            return contextlib.nullcontext()
        with self._lock:
            if host not in self._hosts:
                self._hosts[host] = threading.BoundedSemaphore(self.config.per_host)
            return self._hosts[host]

    def _manager(self, scheme: str, host: str) -> Any:
        """The connection pool for a URL: through the proxy that ``HTTP_PROXY`` / ``HTTPS_PROXY`` name for
        its scheme, unless ``NO_PROXY`` covers its host (``host``: with its port, if the URL names one, as
        urllib passes it: a ``NO_PROXY`` entry ``host:8080`` matches that port only); else direct. Read per
        URL, as urllib does; as urllib, a proxy without a scheme (``proxy:3128``) is an http one, and the
        user and password in its URL are sent to it (``Proxy-Authorization``)."""
        import urllib.request
        from urllib.parse import unquote

        import urllib3

        proxy = urllib.request.getproxies().get(scheme)
        if not proxy or urllib.request.proxy_bypass(host):
            return self._pool
        with self._lock:
            if proxy not in self._proxied:
                url = proxy if "://" in proxy else "http://" + proxy  # urllib3 refused it: every URL failed
                auth = urlsplit(url)
                headers = {}
                if auth.username is not None:
                    headers = urllib3.util.make_headers(
                        proxy_basic_auth=f"{unquote(auth.username)}:{unquote(auth.password or '')}")
                self._proxied[proxy] = urllib3.ProxyManager(url, proxy_headers=headers, **self._options)
            return self._proxied[proxy]

    def process(self, sample: Sample) -> Sample:
        result = self.process_batch([sample])[0]
        if isinstance(result, Drop):
            raise result
        return result

    def process_batch(self, samples: list[Sample]) -> list[Sample | Drop]:
        if not hasattr(self, "_pool"):
            self.setup()
        workers = min(self.config.concurrency, len(samples))
        if workers <= 1:
            return [self._one(s) for s in samples]
        with ThreadPoolExecutor(workers, thread_name_prefix="fetch") as pool:
            return list(pool.map(self._one, samples))

    def _one(self, sample: Sample) -> Sample | Drop:
        cfg = self.config
        field = cfg.out if cfg.out != "auto" else None
        url = sample[cfg.field]
        if isinstance(url, bytes):
            url = url.decode("utf-8", errors="replace")
        url = str(url).strip().lstrip("\ufeff").strip()  # a .url file saved with a byte-order mark
        try:
            parts = urlsplit(url)
            # what urllib3 would refuse (a port over 65535, a space in the host, two lines) is a bad URL
            # here, not a failed connection that every rerun would try again
            _check_url(url)
        except ValueError as exc:
            return Drop("fetch.bad_url", f"{url!r}: {exc}", field=field)
        if parts.scheme not in cfg.schemes or not parts.hostname:
            return Drop("fetch.bad_url", f"{url!r} is not an {'/'.join(cfg.schemes)} URL", field=field)
        try:
            with self._gate(parts.hostname):
                body, info = self._download(url, parts)
        except Drop as drop:
            drop.field = field
            return drop
        ext = cfg.out if cfg.out != "auto" else _field_for(info["content_type"], parts.path)
        if ext is None:
            return Drop("fetch.unknown_type", f"{url}: Content-Type {info['content_type'] or 'none'} and no known "
                                              "extension in the URL; set out:", field=field)
        if not cfg.keep_url:
            del sample[cfg.field]
        sample[ext] = body
        sample.setdefault(SOURCE, {})[ext] = url
        meta(sample)["fetch"] = info
        return sample

    def _download(self, url: str, parts: Any) -> tuple[bytes, dict[str, Any]]:
        """The body and the ``fetch`` metadata of ``url`` (``parts``: its ``urlsplit``)."""
        import urllib3

        cfg = self.config
        start = time.monotonic()

        def late(what: str = "") -> Drop:
            return Drop("fetch.timeout", f"{url}: not done after time_limit {cfg.time_limit:g} s{what}",
                        transient=True)

        try:
            resp = self._manager(parts.scheme, parts.netloc.rpartition("@")[2]).request("GET", url,
                                                                                      preload_content=False)
        except urllib3.exceptions.MaxRetryError as exc:
            raise _transient(url, exc.reason) from None
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise _transient(url, exc) from None
        done = False
        try:
            if resp.status in _RETRY_STATUS:
                raise Drop("fetch.unavailable", f"{url}: HTTP {resp.status} after {cfg.retries} retries",
                           transient=True)
            if not 200 <= resp.status < 300:
                raise Drop("fetch.http_status", f"{url}: HTTP {resp.status} {resp.reason or ''}".rstrip())
            directive = opted_out(resp.headers.getlist("X-Robots-Tag"), self._crawler(),
                                  cfg.disallowed_header_directives)
            if directive is not None:
                raise Drop("fetch.opted_out", f"{url}: X-Robots-Tag {directive}")
            header = resp.headers.get("Content-Length") or ""
            length = int(header) if header.isdigit() else None
            if length is not None and length > cfg.max_bytes:
                raise Drop("fetch.too_large", f"{url}: Content-Length {length} > max_bytes {cfg.max_bytes}")
            # one read of the whole body (a read per arriving packet costs more CPU than the decode after
            # it); time_limit by a timer that shuts the socket, which ends a read a slow server drips
            sock = _socket_of(resp)  # taken now: by the time the timer fires, its descriptor number may be reused
            timer = threading.Timer(cfg.time_limit, _shut, (sock,))
            timer.start()
            try:
                # a compressed body's length is not the length read (urllib3 decodes it): read to the end
                plain = resp.headers.get("Content-Encoding", "identity").strip().lower() == "identity"
                body = _read(resp, length if plain else None, cfg.max_bytes)
            finally:
                timer.cancel()
                timer.join()  # a shutdown under way ends before the duplicate closes (and its number is reused)
                if sock is not None:
                    sock.close()  # our duplicate only: the connection stays open
            size = len(body)
            if time.monotonic() - start >= cfg.time_limit:
                raise late(f" ({size} bytes)")
            if size > cfg.max_bytes:
                raise Drop("fetch.too_large", f"{url}: more than max_bytes {cfg.max_bytes}")
            done = True
        except urllib3.exceptions.DecodeError as exc:  # a body that is not what its Content-Encoding says
            raise Drop("fetch.bad_encoding", f"{url}: {' '.join(str(exc).split())}") from None
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            if time.monotonic() - start >= cfg.time_limit:
                raise late() from None
            raise _transient(url, exc) from None
        finally:
            if not done:  # the rest of the body is not wanted: close the connection, do not read it
                resp.close()
            resp.release_conn()
        if not size:
            raise Drop("fetch.empty", f"{url}: empty body (HTTP {resp.status})")
        ctype = (resp.headers.get("Content-Type") or "").split(";")[0].strip().lower()
        final = url
        for hop in resp.retries.history if resp.retries else ():
            if hop.redirect_location:
                final = urljoin(final, hop.redirect_location)
        return body, {"url": url, "final_url": final, "status": resp.status, "content_type": ctype, "bytes": size}


_DIRECTIVE = re.compile(r"[A-Za-z0-9_-]+")
_PRODUCT = re.compile(r"[^\s/]+")  # a User-Agent's first token, before its "/version"
# directives with a value after a colon, which a crawler's name would look like
_VALUED = ("unavailable_after", "max-snippet", "max-image-preview", "max-video-preview")
_FOR_CRAWLER = re.compile(r"\s*([A-Za-z0-9_.-]+)\s*:(.*)", re.DOTALL)  # "otherbot: noindex, nofollow"


def opted_out(values: list[str], crawler: str, disallowed: list[str]) -> str | None:
    """The first of the ``disallowed`` directives that X-Robots-Tag header ``values`` give ``crawler``, or
    None. A value is a comma-separated list of directives, for every crawler until a ``name:`` prefix
    makes the ones after it for that crawler alone (``otherbot: noindex, nofollow``; headers a proxy
    joined: ``googlebot: nofollow, otherbot: noai``). ``unavailable_after: DATE`` and ``max-snippet: 50``
    (``max-image-preview``, ``max-video-preview``) are directives, not names; ``none`` is ``noindex,
    nofollow``."""
    for value in values:
        target = None  # every crawler
        for item in value.split(","):
            named = _FOR_CRAWLER.fullmatch(item)
            if named is not None and named[1].lower() not in _VALUED:
                target, item = named[1].lower(), named[2]
            directive = item.strip().lower()
            if target in (None, crawler) and (directive in disallowed or
                                              (directive == "none" and {"noindex", "nofollow"} & set(disallowed))):
                return directive
    return None


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


def _check_url(url: str) -> None:
    """Raise ValueError for a URL urllib3 cannot send: unparseable (``LocationParseError`` is a
    ValueError), or with a control character or space left after it percent-encodes the path."""
    from urllib3.util import parse_url

    if _UNSENDABLE.search(parse_url(url).url):
        raise ValueError("a space or control character outside the path")


_UNSENDABLE = re.compile(r"[\x00-\x20\x7f]")


@functools.cache
def _retry_class() -> type:
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


def _transient(url: str, exc: BaseException | None) -> Drop:
    import urllib3

    timeout = isinstance(exc, (TimeoutError, urllib3.exceptions.TimeoutError)) and not isinstance(
        exc, urllib3.exceptions.NewConnectionError)  # a refused connection is one too, for urllib3
    what = " ".join(str(exc).split()) or type(exc).__name__
    return Drop("fetch.timeout" if timeout else "fetch.unavailable", f"{url}: {what}", transient=True)


def _field_for(content_type: str, path: str) -> str | None:
    """The field name for a response: from its Content-Type, else from the URL path's extension."""
    ext = _TYPES.get(content_type)
    if ext is None and content_type and content_type != "application/octet-stream":
        guess = mimetypes.guess_extension(content_type, strict=False)
        ext = guess[1:] if guess else None
    if ext is not None and ext_modality(ext) is not None:
        return ext
    tail = path.rsplit("/", 1)[-1]
    if "." in tail:
        ext = tail.rsplit(".", 1)[1].lower()
        if ext_modality(ext) is not None:
            return "jpg" if ext == "jpeg" else ext
    return None

