"""Regressions from the review of the fetch stage, its retry bookkeeping and the one-batch-ahead worker,
against a real ``http.server`` on localhost (the pattern of ``tests/test_fetch.py``)."""

from __future__ import annotations

import time

import pytest

from tests.conftest import build
from tests.conftest import shard_members as members
from tests.test_fetch import JPG, Server, errors_of, fetch_doc, manifest


class ReviewServer(Server):
    """``/hop3`` redirects three times to ``/a.jpg``; ``/ua`` answers a JPEG and notes the User-Agent;
    every request's time is kept per path."""

    def __init__(self) -> None:
        super().__init__()
        self.agents: list[str] = []
        self.times: dict[str, list[float]] = {}

    def route(self, h, path):
        self.times.setdefault(path, []).append(time.monotonic())
        if path.startswith("/hop"):
            n = int(path[4:])
            h.send_response(302)
            h.send_header("Location", f"/hop{n - 1}" if n > 1 else "/a.jpg")
            h.send_header("Content-Length", "0")
            h.end_headers()
            return None
        if path == "/ua":
            self.agents.append(h.headers.get("User-Agent", ""))
            return self.send(h, 200, JPG, "image/jpeg")
        return super().route(h, path)


@pytest.fixture
def server():
    s = ReviewServer()
    yield s
    s.close()


@pytest.mark.parametrize("retries", [0, 1])
def test_redirects_are_followed_whatever_retries_is(tmp_path, server, retries):
    """Retry(total=retries) counted redirects: retries 0 followed none (an http -> https move was a
    permanent fetch.http_status 302), and 3 hops needed retries >= 3."""
    rows = [{"key": "moved", "url": f"{server.url}/moved"}, {"key": "hops", "url": f"{server.url}/hop3"}]
    out = tmp_path / "out"
    build(fetch_doc(retries=retries), manifest(tmp_path / "m.jsonl", rows), out, workers=1)
    got = members(out)
    assert got["moved.jpg"] == JPG and got["hops.jpg"] == JPG
    assert not (out / "errors.jsonl").read_text().strip()


def test_first_retry_waits_backoff(tmp_path, server):
    """urllib3 retries the first time at once: a 503 or 429 was asked again with no pause at all."""
    server.down.add("/img")
    build(fetch_doc(retries=1, backoff=0.4), manifest(tmp_path / "m.jsonl", [{"key": "a", "url": f"{server.url}/img"}]),
          tmp_path / "out", workers=1)
    first, second = server.times["/img"]
    assert second - first >= 0.35


def test_urls_urllib3_cannot_send_are_bad_urls_not_retried_forever(tmp_path, server):
    """A URL urllib3 refuses (a port out of range, a space in the host) was
    fetch.unavailable, transient: every rerun rebuilt its shard to fail again."""
    u = server.url
    rows = [{"key": "port", "url": "http://127.0.0.1:99999/a.jpg"},
            {"key": "host", "url": "http://exa mple.com/a.jpg"},
            {"key": "space", "url": f"{u}/a b.jpg"}]  # a space in the path is fine: percent-encoded (404 here)
    out = tmp_path / "out"
    build(fetch_doc(), manifest(tmp_path / "m.jsonl", rows), out, workers=1)
    errors = errors_of(out)
    assert {k: (e["reason"], bool(e.get("transient"))) for k, e in errors.items()} == {
        "port": ("fetch.bad_url", False), "host": ("fetch.bad_url", False), "space": ("fetch.http_status", False)}


def test_url_file_with_a_byte_order_mark_and_crlf(tmp_path, server):
    """Notepad's UTF-8 puts a BOM first; str.strip() keeps it, so the URL had no scheme (fetch.bad_url)."""
    inp = tmp_path / "in"
    inp.mkdir()
    (inp / "a.url").write_bytes(b"\xef\xbb\xbf" + f"{server.url}/a.jpg\r\n".encode())
    out = tmp_path / "out"
    summary = build(fetch_doc(keep_url=False), inp, out, workers=1)
    assert summary["samples_out"] == 1 and members(out)["a.jpg"] == JPG


def test_fetch_settings_outside_the_cache_key_are_followed_in_the_same_process(tmp_path, server):
    """Stages were kept per process by pipeline hash, which leaves out how URLs are fetched: a second
    build in the same process (the library API, a long-lived Dask worker) used the first's User-Agent,
    timeouts and retries."""
    m = manifest(tmp_path / "m.jsonl", [{"key": "a", "url": f"{server.url}/ua"}])
    build(fetch_doc(user_agent="first/1"), m, tmp_path / "o1", workers=1)
    build(fetch_doc(user_agent="second/2"), m, tmp_path / "o2", workers=1)
    assert server.agents == ["first/1", "second/2"]


def test_a_body_its_content_encoding_cannot_decode_is_permanent(tmp_path, server):
    """A 'gzip' body that is no gzip raised urllib3's DecodeError, an HTTPError: fetch.unavailable,
    transient, so every rerun rebuilt the shard to fetch it and fail again."""
    def route(h, path, base=server.route):
        if path == "/badgz.jpg":
            h.send_response(200)
            h.send_header("Content-Type", "image/jpeg")
            h.send_header("Content-Encoding", "gzip")
            h.send_header("Content-Length", "9")
            h.end_headers()
            h.wfile.write(b"not gzip!")
            return None
        return base(h, path)

    server.route = route
    out = tmp_path / "out"
    build(fetch_doc(), manifest(tmp_path / "m.jsonl", [{"key": "a", "url": f"{server.url}/badgz.jpg"}]), out,
          workers=1)
    error = errors_of(out)["a"]
    assert error["reason"] == "fetch.bad_encoding" and not error.get("transient")
