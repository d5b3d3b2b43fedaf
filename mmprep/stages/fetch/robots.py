"""What a site lets this crawler fetch: its robots.txt (RFC 9309, read by protego) and the
``X-Robots-Tag`` headers of its responses (:func:`opted_out`).

Each worker fetches a site's robots.txt once, when the first URL of that site comes up; the other
downloads from the site wait for it. A site is a scheme, host and port (``https://a.com`` and
``http://a.com:8080`` have a robots.txt each). What the RFC asks of a crawler:

- 2xx: its rules, the group of this crawler's product token (:func:`crawler_name`, matched
  case-insensitively; protego also takes a group named by its start, ``mm`` for ``mmprep``, as
  Python's robotparser does), else the ``*`` group; the longest matching path wins, ``Allow`` on a
  tie; ``*`` and ``$`` in paths. The first 512 KiB is read, cut at its last whole line (the RFC
  asks for at least 500 KiB).
- 4xx (none there, 403 included), a body its ``Content-Encoding`` cannot decode, or more than 5
  redirects: everything may be fetched.
- 5xx, 408 or 429 after the retries: "unreachable", so nothing may be fetched. The sample is dropped
  as ``fetch.robots_unreachable``, transient: the next run of the same command tries again. No answer
  at all (a refused connection, a timeout) drops the site's URLs as ``fetch.unavailable`` or
  ``fetch.timeout``, as their own download would, naming the robots.txt. A site's answer is kept
  for 24 hours; a failure for the rest of the batch, a minute at most (the site's other URLs in it
  are not tried: a dead site costs one robots.txt per batch, not a timeout per URL). The answers of
  the last 1,000 sites (2 MiB of robots.txt at most) are kept: a URL list of a million hosts would
  otherwise hold them all.
- ``Crawl-delay`` is not obeyed (it is not in the RFC); ``per_host`` bounds a worker's downloads
  from one host.
"""

from __future__ import annotations

import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from mmprep.errors import Drop

MAX_BYTES = 512 * 1024
KEEP_SECONDS = 24 * 3600.0  # the RFC's longest
KEEP_UNREACHABLE_SECONDS = 60.0  # a site that was down gets asked again after this (a build is long)
KEEP_SITES, KEEP_BYTES = 1000, 2 << 20  # protego holds ~40x a robots.txt's bytes
_ALL = "all"  # a robots.txt that allows everything (4xx, or empty)


def site_of(parts: Any) -> str:
    """A URL's site, whose robots.txt applies to it: ``scheme://host[:port]`` (``parts``: its ``urlsplit``;
    no user, the host in lowercase, a port only where it is not the scheme's own)."""
    host = parts.hostname or ""
    host = f"[{host}]" if ":" in host else host
    port = parts.port  # ValueError: not a port
    default = {"http": 80, "https": 443}.get(parts.scheme)
    return f"{parts.scheme}://{host}" + (f":{port}" if port is not None and port != default else "")


class SiteRules:
    """The robots.txt rules of every site this worker fetched from, for ``crawler``.

    ``get(url)``: fetches a robots.txt: ``(status, body)`` for any answer (after retries and redirects),
    or raises ``Drop`` (transient) when there was none (a refused connection, a timeout)."""

    def __init__(self, get: Callable[[str], tuple[int, bytes]], crawler: str, *,
                 retry_status: tuple[int, ...] = (408, 429), clock: Callable[[], float] = time.monotonic):
        self._get = get
        self._crawler = crawler
        self._retry_status = retry_status
        self._clock = clock
        self._sites: OrderedDict[str, tuple[float, Any, int]] = OrderedDict()  # site -> kept until, rules, bytes
        self._bytes = 0  # of the robots.txt files kept
        self._pending: dict[str, threading.Event] = {}  # sites whose robots.txt is being fetched
        self._lock = threading.Lock()  # for the three above

    def refusal(self, url: str, site: str) -> Drop | None:
        """Why ``url`` may not be fetched (``fetch.robots_disallowed`` or ``fetch.robots_unreachable``),
        or None. ``site``: its ``scheme://host[:port]``."""
        rules = self._rules(site)
        if isinstance(rules, Drop):
            return Drop(rules.reason, f"{url}: {rules.message}", transient=True)
        if rules is _ALL or rules.can_fetch(url, self._crawler):
            return None
        return Drop("fetch.robots_disallowed", f"{url}: {site}/robots.txt disallows it for {self._crawler}")

    def forget_failures(self) -> None:
        """Ask the sites that failed again (called per batch): a later run, or a library caller's next
        build in this process, finds a site that is up again."""
        with self._lock:
            for site in [site for site, kept in self._sites.items() if isinstance(kept[1], Drop)]:
                del self._sites[site]

    def _rules(self, site: str) -> Any:
        """The site's rules, kept or fetched: one fetch per site at a time, the site's other downloads
        wait for it (and no other site's)."""
        while True:
            with self._lock:
                kept = self._sites.get(site)
                if kept is not None and self._clock() < kept[0]:
                    self._sites.move_to_end(site)
                    return kept[1]
                pending = self._pending.get(site)
                if pending is None:
                    self._pending[site] = threading.Event()
                    break
            pending.wait()  # then look again (kept, or dropped already: fetched again)
        try:
            rules, seconds, size = self._fetch(site)
            with self._lock:
                old = self._sites.pop(site, None)
                self._bytes += size - (old[2] if old else 0)
                self._sites[site] = (self._clock() + seconds, rules, size)
                while len(self._sites) > KEEP_SITES or (self._bytes > KEEP_BYTES and len(self._sites) > 1):
                    self._bytes -= self._sites.popitem(last=False)[1][2]
            return rules
        finally:
            with self._lock:
                self._pending.pop(site).set()

    def _fetch(self, site: str) -> tuple[Any, float, int]:
        """The site's rules, for how many seconds they hold, and the bytes they were read from."""
        robots = f"{site}/robots.txt"
        try:
            status, body = self._get(robots)
        except Drop as drop:  # no answer at all: the site is down, for its other URLs too
            return Drop(drop.reason, drop.message, transient=True), KEEP_UNREACHABLE_SECONDS, 0
        if status >= 500 or status in self._retry_status:
            return _unreachable(robots, f"HTTP {status}"), KEEP_UNREACHABLE_SECONDS, 0
        if not 200 <= status < 300:  # 4xx, or a redirect past the fifth: as if there were none
            return _ALL, KEEP_SECONDS, 0
        if len(body) > MAX_BYTES:  # cut at the last whole line: "Disallow: /private/" is not "Disallow: /"
            body = body[:MAX_BYTES].rpartition(b"\n")[0]
        text = body.decode("utf-8", errors="replace").lstrip("\ufeff")
        if not text.strip():
            return _ALL, KEEP_SECONDS, 0
        from protego import Protego

        return Protego.parse(text), KEEP_SECONDS, len(body)


def _unreachable(robots: str, why: str) -> Drop:
    return Drop("fetch.robots_unreachable", f"{robots} could not be fetched ({why}): the RFC counts that as "
                                            "disallowing everything", transient=True)


DIRECTIVE = re.compile(r"[A-Za-z0-9_-]+")
PRODUCT = re.compile(r"[^\s/]+")  # a User-Agent's first token, before its "/version"
_URL = re.compile(r"\+?[A-Za-z][A-Za-z0-9+.-]*://\S*|\+\S*")  # "+https://example.org/bot.html" in a comment
_COMPATIBLE = re.compile(r"\(\s*compatible\s*;\s*([A-Za-z_-]+)", re.IGNORECASE)  # "(compatible; MyBot; ..."
_NAMED = re.compile(r"(?<![A-Za-z0-9_.-])([A-Za-z_-]+)/\S")  # a name/version token (RFC 9309: letters, _ and -)


def crawler_name(user_agent: str) -> str:
    """The name robots.txt groups and ``X-Robots-Tag`` prefixes use for us: the User-Agent's product
    token, in lowercase (``mybot/1.0`` -> ``mybot``). Past a leading ``Mozilla/5.0``, crawlers that
    dress as browsers name themselves in a comment: the name after ``(compatible;`` (``Mozilla/5.0
    (compatible; Googlebot/2.1; +http://...)`` -> ``googlebot``), else the first other name/version
    outside a URL; else ``mozilla``."""
    first = PRODUCT.match(user_agent)[0].lower()
    if first != "mozilla":
        return first
    rest = _URL.sub(" ", user_agent)
    named = _COMPATIBLE.search(rest)
    names = [named[1]] if named is not None else _NAMED.findall(rest)
    return next((name.lower() for name in names if name.lower() != "mozilla"), first)


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
