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
  this one, is dropped as ``fetch.opted_out`` without reading its body; and a URL that the site's
  robots.txt disallows for this crawler is not fetched at all (``fetch.robots_disallowed``; see
  :mod:`mmprep.stages.fetch.robots`).
- **Fetched once**: the downloaded bytes go into the content cache (keyed by the URL and these
  parameters), so a change to a later stage, or a re-shard, downloads nothing.

Metadata ``fetch``: ``url``, ``final_url`` (after redirects), ``status``, ``content_type``, ``bytes``;
the field's source path (as ``errors.jsonl`` shows it for later stages) is the URL.
"""

from __future__ import annotations

import contextlib
import mimetypes
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import urljoin, urlsplit

from pydantic import Field, ValidationInfo, field_validator

from mmprep import __version__
from mmprep.errors import Drop
from mmprep.sample import SOURCE, Sample, ext_modality, meta
from mmprep.stage import Stage, StageConfig, register
from mmprep.stages.fetch.robots import DIRECTIVE, PRODUCT, SiteRules, crawler_name, opted_out, site_of
from mmprep.stages.fetch.robots import MAX_BYTES as ROBOTS_MAX_BYTES
from mmprep.stages.fetch.wire import check_url, read_within, retry_class, transient_drop

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
        robots_txt: bool = Field(True, description="Obey each site's robots.txt (RFC 9309) for the product token of "
                                                   "user_agent: a URL it disallows is not fetched "
                                                   "(fetch.robots_disallowed).")

        @field_validator("disallowed_header_directives")
        @classmethod
        def _directives(cls, value: list[str]) -> list[str]:
            bad = [d for d in value if not DIRECTIVE.fullmatch(d)]
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

        @field_validator("out")
        @classmethod
        def _not_the_url(cls, value: str, info: ValidationInfo) -> str:
            if value == info.data.get("field"):  # the download would replace the URL it came from
                raise ValueError(f"{value!r} is the URL field (field: {value}): the download cannot go into the "
                                 "field that holds its URL; name another field, or auto")
            return value

        @field_validator("user_agent")
        @classmethod
        def _agent(cls, value: str) -> str:
            if not PRODUCT.match(value):
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
        if self.config.robots_txt:
            params.update(robots_txt=True, crawler=self._crawler())
        return params

    def _crawler(self) -> str:
        """The name robots.txt groups and X-Robots-Tag prefixes use for this crawler (``crawler_name``)."""
        return crawler_name(self.config.user_agent)

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
        retry = retry_class()(total=None, connect=n, read=n, status=n, other=n, redirect=5,
                               status_forcelist=_RETRY_STATUS, allowed_methods=["GET"], backoff_factor=cfg.backoff,
                               respect_retry_after_header=False, raise_on_status=False, raise_on_redirect=False)
        self._options = {"num_pools": 64, "maxsize": cfg.concurrency, "retries": retry, "block": False,
                         "timeout": urllib3.Timeout(connect=cfg.timeout, read=cfg.timeout),
                         "headers": {"User-Agent": cfg.user_agent}}
        self._pool = urllib3.PoolManager(**self._options)
        self._proxied: dict[str, Any] = {}  # proxy URL -> its ProxyManager
        self._lock = threading.Lock()
        self._hosts: dict[str, threading.BoundedSemaphore] = {}  # per_host: a semaphore per host
        self._robots = SiteRules(self._robots_txt, self._crawler(), retry_status=_RETRY_STATUS) \
            if cfg.robots_txt else None

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
        if self._robots is not None:
            self._robots.forget_failures()
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
        if field is not None and field in sample:  # known before asking: nothing to download
            return _clash(url, field)
        try:
            parts, site = self._checked(url)
            with self._gate(parts.hostname):
                # checked as it is sent: urllib3 removes dot segments (/public/../private/x.jpg)
                if self._robots is not None and (refusal := self._robots.refusal(_sent(url), site)) is not None:
                    raise refusal
                body, info = self._download(url, parts)
        except Drop as drop:
            drop.field = field
            return drop
        ext = cfg.out if cfg.out != "auto" else _field_for(info["content_type"], parts.path)
        if ext is None:
            return Drop("fetch.unknown_type", f"{url}: Content-Type {info['content_type'] or 'none'} and no known "
                                              "extension in the URL; set out:", field=field)
        if ext in sample:
            return _clash(url, ext)
        if not cfg.keep_url:
            del sample[cfg.field]
        sample[ext] = body
        sample.setdefault(SOURCE, {})[ext] = url
        meta(sample)["fetch"] = info
        return sample

    def _checked(self, url: str) -> tuple[Any, str]:
        """The URL's ``urlsplit`` and its site (``site_of``); ``fetch.bad_url`` where it cannot be fetched.
        What urllib3 would refuse (a port over 65535, a space in the host, two lines) is a bad URL here,
        not a failed connection that every rerun would try again."""
        schemes = self.config.schemes
        try:
            parts = urlsplit(url)
            check_url(url)
            site = site_of(parts)
        except ValueError as exc:
            raise Drop("fetch.bad_url", f"{url!r}: {exc}") from None
        if parts.scheme not in schemes or not parts.hostname:
            raise Drop("fetch.bad_url", f"{url!r} is not an {'/'.join(schemes)} URL")
        return parts, site

    def _request(self, url: str, target: str, parts: Any, **options: Any) -> Any:
        """``GET target`` (``parts``: its ``urlsplit``), not preloaded; a transient ``Drop`` naming ``url``
        when no answer came (after the retries)."""
        import urllib3

        try:
            return self._manager(parts.scheme, parts.netloc.rpartition("@")[2]).request(
                "GET", target, preload_content=False, **options)
        except urllib3.exceptions.MaxRetryError as exc:
            raise transient_drop(url, exc.reason) from None
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise transient_drop(url, exc) from None

    def _download(self, url: str, parts: Any) -> tuple[bytes, dict[str, Any]]:
        """The body and the ``fetch`` metadata of ``url`` (``parts``: its ``urlsplit``)."""
        import urllib3

        cfg = self.config
        start = time.monotonic()

        def late(what: str = "") -> Drop:
            return Drop("fetch.timeout", f"{url}: not done after time_limit {cfg.time_limit:g} s{what}",
                        transient=True)

        resp, final = self._response(url, parts)
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
            # a compressed body's length is not the length read (urllib3 decodes it): read to the end
            plain = resp.headers.get("Content-Encoding", "identity").strip().lower() == "identity"
            body = read_within(resp, length if plain else None, cfg.max_bytes, cfg.time_limit)
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
            raise transient_drop(url, exc) from None
        finally:
            if not done:  # the rest of the body is not wanted: close the connection, do not read it
                resp.close()
            resp.release_conn()
        if not size:
            raise Drop("fetch.empty", f"{url}: empty body (HTTP {resp.status})")
        ctype = (resp.headers.get("Content-Type") or "").split(";")[0].strip().lower()
        return body, {"url": url, "final_url": final, "status": resp.status, "content_type": ctype, "bytes": size}

    def _response(self, url: str, parts: Any) -> tuple[Any, str]:
        """The response to ``GET url`` after redirects (up to 5), and the URL that gave it. They are
        followed here rather than by urllib3, each one's URL checked before it is asked for, whether
        robots.txt is obeyed or not: a redirect to ``file://`` or ``ftp://`` is ``fetch.bad_url``, not a
        urllib3 error that reads as a failed connection (and is retried on every rerun), and one to a URL
        robots.txt disallows is not asked for."""
        robots = self._robots
        target = url
        for hop in range(6):
            resp = self._request(url, target, parts, redirect=False)
            location = resp.get_redirect_location()
            if not location or hop == 5:  # a sixth redirect is an HTTP 3xx for the caller
                break
            resp.drain_conn()  # as urllib3 does: the connection is kept for the next request
            resp.release_conn()
            target = urljoin(target, location)
            try:
                parts, site = self._checked(target)
                refusal = robots.refusal(_sent(target), site) if robots is not None else None
                if refusal is not None:
                    raise refusal
            except Drop as drop:
                raise Drop(drop.reason, f"{url} redirected to {drop.message}", transient=drop.transient) from None
        return resp, target

    def _robots_txt(self, url: str) -> tuple[int, bytes]:
        """A site's robots.txt (for :class:`SiteRules`): the status and the body (its first
        ``ROBOTS_MAX_BYTES``) after retries and redirects; a transient ``Drop`` when no answer came."""
        import urllib3

        limit = self.config.time_limit
        start = time.monotonic()
        resp = self._request(url, url, urlsplit(url))
        body, whole = b"", False
        try:
            if 200 <= resp.status < 300:
                body = read_within(resp, None, ROBOTS_MAX_BYTES, limit)
                whole = len(body) <= ROBOTS_MAX_BYTES
        except urllib3.exceptions.DecodeError:  # not what its Content-Encoding says: no rules to read
            return resp.status, b""
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            if time.monotonic() - start < limit:
                raise transient_drop(url, exc) from None
        finally:
            if not whole:
                resp.close()  # the rest is not wanted
            resp.release_conn()
        if time.monotonic() - start >= limit:  # cut off: the rules read so far are not the file's
            raise Drop("fetch.timeout", f"{url}: not done after time_limit {limit:g} s", transient=True)
        return resp.status, body


def _clash(url: str, ext: str) -> Drop:
    """``fetch.field_clash``: the sample already holds ``ext`` (a manifest column, a file beside the
    ``.url``, the URL field itself). Its own value is never replaced, and the whole sample is dropped even
    where ``ext`` is optional: omitting the field would remove the value the sample came with."""
    return Drop("fetch.field_clash", f"{url}: the download would be field {ext!r}, which the sample already "
                                     "has; set out: to another field")


def _sent(url: str) -> str:
    """The URL as urllib3 sends it (dot segments removed, unsafe characters quoted)."""
    from urllib3.util import parse_url

    return parse_url(url).url


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

