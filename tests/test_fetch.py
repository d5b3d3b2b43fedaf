"""The ``fetch`` stage against a real HTTP server on localhost (``http.server``), in real builds."""

from __future__ import annotations

import gzip
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest

from mmprep.testing.media import image_bytes, wav_bytes
from tests.conftest import build
from tests.conftest import shard_members as members

JPG = image_bytes(32, 24, seed=1)
PNG = image_bytes(20, 10, ext="png", seed=2)
WAV = wav_bytes(np.zeros(1600, np.float32))


ROBOTS = {"/noai.jpg": ["noai"], "/theirs.jpg": ["otherbot: noai"], "/ours.jpg": ["MMprep: noimageai"],
          "/two.jpg": ["nofollow", "NoIndex"], "/joined.jpg": ["otherbot: nofollow, mmprep: noai"],
          "/fine.jpg": ["nofollow, unavailable_after: 25 Jun 2030 15:00:00 PST"],
          "/preview.jpg": ["max-image-preview: large, noimageai"], "/none.jpg": ["none"]}


REDIRECTS = {"/moved": "/a.jpg", "/to-private": "/private/x.jpg"}


class Server:
    """Serves fixed routes; counts requests per path; ``down`` paths answer 503 while listed."""

    def __init__(self) -> None:
        self.hits: dict[str, int] = {}
        self.down: set[str] = set()
        self.proxied: list[str] = []
        self.proxy_auth: list[str | None] = []
        self.gate = threading.Condition()
        self.now = self.most = 0
        self.want = 1  # /wait.jpg: requests in flight at once before the first of them answer
        self.robots: bytes | None = None  # /robots.txt, else a 404
        self.robots_headers: dict[str, str] = {}
        self.robots_pause = 0.0  # seconds after its first line (then no Content-Length: it ends at the close)
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet
                pass

            def do_GET(self):  # noqa: N802 - http.server's name
                path = self.path.split("?")[0]
                if path.startswith("http://"):  # a request to us as a proxy: GET http://host/path
                    server.proxied.append(path)
                    server.proxy_auth.append(self.headers.get("Proxy-Authorization"))
                    path = "/" + path.split("/", 3)[3]
                server.hits[path] = server.hits.get(path, 0) + 1
                server.route(self, path)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.block_on_close = False  # the dripping handler may still run at the end
        self.url = f"http://127.0.0.1:{self.httpd.server_port}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def route(self, h: BaseHTTPRequestHandler, path: str) -> None:
        if path in self.down:
            return self.send(h, 503, b"busy", "text/plain")
        if path == "/robots.txt" and self.robots is not None:
            return self.send_robots(h)
        if path.startswith("/private/"):
            return self.send(h, 200, JPG, "image/jpeg")
        if path in REDIRECTS:
            h.send_response(302)
            h.send_header("Location", REDIRECTS[path])
            h.send_header("Content-Length", "0")
            h.end_headers()
            return None
        if path == "/a.jpg":
            return self.send(h, 200, JPG, "image/jpeg")
        if path == "/img":  # no extension: named from Content-Type
            return self.send(h, 200, PNG, "image/png; charset=binary")
        if path == "/sound.wav":  # generic type: named from the URL's extension
            return self.send(h, 200, WAV, "application/octet-stream")
        if path == "/big.jpg":
            return self.send(h, 200, b"x" * 5000, "image/jpeg")
        if path == "/empty.jpg":
            return self.send(h, 200, b"", "image/jpeg")
        if path == "/gz.jpg":  # compressed on the wire: Content-Length is the gzip's
            body = gzip.compress(JPG)
            h.send_response(200)
            h.send_header("Content-Type", "image/jpeg")
            h.send_header("Content-Encoding", "gzip")
            h.send_header("Content-Length", str(len(body)))
            h.end_headers()
            h.wfile.write(body)
            return None
        if path == "/wait.jpg":  # the server notes how many are in flight at once
            # the first ones wait until ``want`` are (not on timing: on a loaded machine the third thread's
            # request could come after the first two's sleep), then each stays 0.2 s
            with self.gate:
                self.now += 1
                self.most = max(self.most, self.now)
                self.gate.notify_all()
                self.gate.wait_for(lambda: self.most >= self.want, timeout=10)
            time.sleep(0.2)
            with self.gate:
                self.now -= 1
            return self.send(h, 200, JPG, "image/jpeg")
        if path in ROBOTS:  # opted out (or not) by X-Robots-Tag headers
            h.send_response(200)
            h.send_header("Content-Type", "image/jpeg")
            for value in ROBOTS[path]:
                h.send_header("X-Robots-Tag", value)
            h.send_header("Content-Length", str(len(JPG)))
            h.end_headers()
            h.wfile.write(JPG)
            return None
        if path == "/blob":
            return self.send(h, 200, b"data", "application/octet-stream")
        if path == "/slow.jpg":  # headers at once, then a byte every 0.3 s: only time_limit stops it
            h.send_response(200)
            h.send_header("Content-Type", "image/jpeg")
            h.send_header("Content-Length", "100")
            h.end_headers()
            try:
                for _ in range(100):
                    h.wfile.write(b"x")
                    h.wfile.flush()
                    time.sleep(0.3)
            except OSError:
                pass
            return None
        return self.send(h, 404, b"no", "text/plain")

    def send_robots(self, h: BaseHTTPRequestHandler) -> None:
        h.send_response(200)
        h.send_header("Content-Type", "text/plain")
        for name, value in self.robots_headers.items():
            h.send_header(name, value)
        if not self.robots_pause:
            h.send_header("Content-Length", str(len(self.robots)))
        else:
            h.send_header("Connection", "close")
        h.end_headers()
        head, _, rest = self.robots.partition(b"\n")
        h.wfile.write(head + b"\n")
        h.wfile.flush()
        time.sleep(self.robots_pause)
        try:
            h.wfile.write(rest)
        except OSError:
            pass
        h.close_connection = True

    @staticmethod
    def send(h: BaseHTTPRequestHandler, status: int, body: bytes, ctype: str) -> None:
        h.send_response(status)
        h.send_header("Content-Type", ctype)
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        h.wfile.write(body)

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server():
    s = Server()
    yield s
    s.close()


def manifest(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def fetch_doc(**params):
    return {"stages": [{"stage": "fetch", "timeout": 2, "time_limit": 1.5, "retries": 1, "backoff": 0,
                        "max_bytes": 4000, **params}],
            "output": {"name": "web"}}


def errors_of(out):
    return {e["key"]: e for e in map(json.loads, (out / "errors.jsonl").read_text().splitlines())}


def test_urls_become_media_fields_and_failures_have_reasons(tmp_path, server):
    u = server.url
    rows = [{"key": "ok", "url": f"{u}/a.jpg", "txt": "a caption"},
            {"key": "typed", "url": f"{u}/img"},
            {"key": "by_ext", "url": f"{u}/sound.wav"},
            {"key": "moved", "url": f"{u}/moved"},
            {"key": "gz", "url": f"{u}/gz.jpg"},
            {"key": "missing", "url": f"{u}/nothing.jpg"},
            {"key": "big", "url": f"{u}/big.jpg"},
            {"key": "empty", "url": f"{u}/empty.jpg"},
            {"key": "blob", "url": f"{u}/blob"},
            {"key": "slow", "url": f"{u}/slow.jpg"},
            {"key": "ftp", "url": "ftp://example.org/a.jpg"},
            {"key": "refused", "url": "http://127.0.0.1:9/a.jpg"}]
    out = tmp_path / "out"
    summary = build(fetch_doc(), manifest(tmp_path / "m.jsonl", rows), out)
    got = members(out)
    assert got["ok.jpg"] == JPG and got["ok.txt"] == b"a caption" and got["ok.url"] == f"{u}/a.jpg".encode()
    assert got["typed.png"] == PNG and got["by_ext.wav"] == WAV and got["moved.jpg"] == JPG and got["gz.jpg"] == JPG
    meta = json.loads(got["moved.meta.json"])["fetch"]
    assert meta == {"url": f"{u}/moved", "final_url": f"{u}/a.jpg", "status": 200, "content_type": "image/jpeg",
                    "bytes": len(JPG)}
    errors = errors_of(out)
    assert {k: e["reason"] for k, e in errors.items()} == {
        "missing": "fetch.http_status", "big": "fetch.too_large", "empty": "fetch.empty",
        "blob": "fetch.unknown_type", "slow": "fetch.timeout", "ftp": "fetch.bad_url",
        "refused": "fetch.unavailable"}
    assert "HTTP 404" in errors["missing"]["message"]
    assert errors["slow"].get("transient") and errors["refused"].get("transient")
    assert not errors["missing"].get("transient")
    assert summary["samples_out"] == 5 and summary["samples_dropped"] == 7
    assert server.hits["/nothing.jpg"] == 1  # a 404 is not retried
    assert server.hits["/slow.jpg"] == 1  # time_limit: not retried either (it would take as long again)


def test_retry_after_503_and_transient_failures_fetched_again_on_rerun(tmp_path, server):
    u = server.url
    rows = [{"key": f"k{i}", "url": f"{u}/a.jpg?{i}"} for i in range(5)] + [{"key": "flaky", "url": f"{u}/img"}]
    m = manifest(tmp_path / "m.jsonl", rows)
    out = tmp_path / "out"
    server.down.add("/img")
    build(fetch_doc(), m, out)
    assert server.hits["/img"] == 2  # one try and one retry
    assert errors_of(out)["flaky"]["reason"] == "fetch.unavailable"
    assert "flaky.png" not in members(out)
    server.down.clear()
    hits = dict(server.hits)
    summary = build(fetch_doc(), m, out)  # the same command: only the failed URL is fetched again
    assert server.hits["/img"] == hits["/img"] + 1 and server.hits["/a.jpg"] == hits["/a.jpg"]
    assert members(out)["flaky.png"] == PNG and summary["samples_out"] == 6
    assert not (out / "errors.jsonl").read_text().strip()


def test_downloads_are_cached_for_later_stage_changes(tmp_path, server):
    m = manifest(tmp_path / "m.jsonl", [{"key": "a", "url": f"{server.url}/a.jpg"}])
    doc = fetch_doc()
    doc["stages"].append({"stage": "image.decode"})
    build(doc, m, tmp_path / "o1", cache_dir=str(tmp_path / "cache"))
    doc["stages"].append({"stage": "image.resize", "size": 8})
    doc["stages"][0]["concurrency"] = 3  # how it is fetched is not in the cache key
    build(doc, m, tmp_path / "o2", cache_dir=str(tmp_path / "cache"))
    assert server.hits["/a.jpg"] == 1
    assert len(members(tmp_path / "o2")["a.jpg"]) < len(JPG)


def test_x_robots_tag_opt_outs_are_dropped_with_their_directive_unless_none_are_disallowed(tmp_path, server):
    m = manifest(tmp_path / "m.jsonl", [{"key": path[1:-4], "url": server.url + path} for path in ROBOTS])
    out = tmp_path / "out"
    summary = build(fetch_doc(), m, out)
    errors = errors_of(out)
    assert {k: (e["reason"], e["message"].split(" X-Robots-Tag ")[1]) for k, e in errors.items()} == {
        "noai": ("fetch.opted_out", "noai"), "ours": ("fetch.opted_out", "noimageai"),
        "two": ("fetch.opted_out", "noindex"), "joined": ("fetch.opted_out", "noai"),
        "preview": ("fetch.opted_out", "noimageai"), "none": ("fetch.opted_out", "none")}
    assert not any(e.get("transient") for e in errors.values())  # a rerun does not ask again
    assert sorted(members(out)) == ["fine.jpg", "fine.meta.json", "fine.url", "theirs.jpg", "theirs.meta.json",
                                    "theirs.url"]
    assert summary["errors_by_reason"] == {"fetch.opted_out": 6}
    everything = build(fetch_doc(disallowed_header_directives=[]), m, tmp_path / "all")
    assert everything["samples_out"] == len(ROBOTS) and members(tmp_path / "all")["noai.jpg"] == JPG


ROBOTS_TXT = b"""\xef\xbb\xbfUser-agent: otherbot
Disallow: /

# ours: matched by user_agent's product token, in any case
User-agent: MMprep
Disallow: /private/
Allow: /private/ok.jpg$
Disallow: /*.wav$
"""


def test_robots_txt_is_read_once_per_site_and_obeyed_for_our_product_token(tmp_path, server):
    """RFC 9309 as protego reads it: our group, not otherbot's; the longest match wins (Allow ok.jpg
    inside a disallowed folder); wildcards. A disallowed URL is never requested; a redirect into a
    disallowed path is dropped too. robots_txt: false reads none."""
    server.robots = ROBOTS_TXT
    u = server.url
    rows = [{"key": "a", "url": f"{u}/a.jpg"}, {"key": "x", "url": f"{u}/private/x.jpg"},
            {"key": "ok", "url": f"{u}/private/ok.jpg"}, {"key": "wav", "url": f"{u}/sound.wav"},
            {"key": "hop", "url": f"{u}/to-private"}, {"key": "dots", "url": f"{u}/public/../private/x.jpg"}]
    m = manifest(tmp_path / "m.jsonl", rows)
    out = tmp_path / "out"
    summary = build(fetch_doc(), m, out, workers=1)
    errors = errors_of(out)
    assert {k: e["reason"] for k, e in errors.items()} == {
        "x": "fetch.robots_disallowed", "wav": "fetch.robots_disallowed", "hop": "fetch.robots_disallowed",
        "dots": "fetch.robots_disallowed"}  # checked as urllib3 sends it: /private/x.jpg
    assert errors["x"]["message"] == f"{u}/private/x.jpg: {u}/robots.txt disallows it for mmprep"
    assert errors["hop"]["message"] == f"{u}/to-private redirected to {errors['x']['message']}"
    assert not any(e.get("transient") for e in errors.values())  # a rerun does not ask again
    assert summary["samples_out"] == 2 and members(out)["ok.jpg"] == JPG
    assert server.hits["/robots.txt"] == 1 and server.hits["/to-private"] == 1
    assert "/sound.wav" not in server.hits and "/private/x.jpg" not in server.hits  # never asked for
    everything = build(fetch_doc(robots_txt=False), m, tmp_path / "all", workers=1)
    assert everything["samples_out"] == 6 and server.hits["/robots.txt"] == 1


@pytest.mark.parametrize("case", ["cut off by time_limit", "undecodable gzip"])
def test_a_robots_txt_cut_off_is_a_timeout_and_one_that_cannot_be_decoded_has_no_rules(tmp_path, server, case):
    """A robots.txt still arriving at time_limit is no robots.txt: its first lines alone would be read as
    the whole file (here they allow what the rest disallows). One whose Content-Encoding lies has no
    rules to read: everything may be fetched (it was a transient failure of every URL, every run)."""
    if case == "undecodable gzip":
        server.robots, server.robots_headers = b"User-agent: *\nDisallow: /a.jpg\n", {"Content-Encoding": "gzip"}
    else:
        server.robots, server.robots_pause = b"User-agent: *\nDisallow: /a.jpg\n", 2.5
    out = tmp_path / "out"
    summary = build(fetch_doc(), manifest(tmp_path / "m.jsonl", [{"key": "a", "url": f"{server.url}/a.jpg"}]), out,
                    workers=1)
    if case == "undecodable gzip":
        assert summary["samples_out"] == 1 and members(out)["a.jpg"] == JPG
    else:
        error = errors_of(out)["a"]
        assert (error["reason"], error["transient"]) == ("fetch.timeout", True) and "/a.jpg" not in server.hits
        assert error["message"] == f"{server.url}/a.jpg: {server.url}/robots.txt: not done after time_limit 1.5 s"


def test_robots_txt_with_a_server_error_disallows_the_site_until_a_rerun_finds_it(tmp_path, server):
    """A 5xx robots.txt means 'disallow everything' (RFC 9309): the site's URLs are dropped as transient
    fetch.robots_unreachable without being asked for, and the next run asks again; a 404 allows all."""
    server.down.add("/robots.txt")
    rows = [{"key": f"k{i}", "url": f"{server.url}/a.jpg?{i}"} for i in range(3)]
    m = manifest(tmp_path / "m.jsonl", rows)
    out = tmp_path / "out"
    first = build(fetch_doc(), m, out, workers=1)
    errors = errors_of(out)
    assert first["samples_out"] == 0 and {e["reason"] for e in errors.values()} == {"fetch.robots_unreachable"}
    assert all(e["transient"] for e in errors.values()) and "HTTP 503" in errors["k0"]["message"]
    assert server.hits["/robots.txt"] == 2 and "/a.jpg" not in server.hits  # a try and a retry, for all three
    server.down.clear()  # now a 404: everything may be fetched
    second = build(fetch_doc(), m, out, workers=1)
    assert second["samples_out"] == 3 and server.hits["/a.jpg"] == 3 and server.hits["/robots.txt"] == 3


@pytest.mark.parametrize(("agent", "name"), [
    ("mmprep/0.1", "mmprep"), ("MyBot/2 (+https://x.org/bot)", "mybot"),
    ("Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)", "googlebot"),
    ("Mozilla/5.0 (compatible; MyBot; +https://mybot.example/about)", "mybot"),
    ("Mozilla/5.0 (compatible; +http://example.org/bot.html) My_Bot/1.0", "my_bot"),
    ("Mozilla/5.0 (X11; Linux x86_64)", "mozilla")])
def test_the_crawler_name_robots_rules_use_is_the_user_agents_product_token(agent, name):
    from mmprep.stages.fetch.robots import crawler_name

    assert crawler_name(agent) == name


def test_site_rules_keep_an_answer_a_day_and_a_failure_a_minute():
    """SiteRules against a robots.txt source whose answers change, on a clock the test moves: one site per
    scheme, host and port; a failure is asked again after a minute, an answer after 24 hours."""
    from urllib.parse import urlsplit

    from mmprep.errors import Drop
    from mmprep.stages.fetch.robots import MAX_BYTES, SiteRules, site_of

    asked, answers, now = [], {}, [0.0]

    def get(url):
        asked.append(url)
        answer = answers.get(url, (404, b""))
        if isinstance(answer, Drop):
            raise answer
        return answer

    rules = SiteRules(get, "mmprep", clock=lambda: now[0])
    answers["http://h/robots.txt"] = (200, b"User-agent: *\nDisallow: /\n")
    assert rules.refusal("http://h/a", "http://h").reason == "fetch.robots_disallowed"
    assert rules.refusal("http://h:8080/a", "http://h:8080") is None  # another site: a 404, everything allowed
    answers["http://h/robots.txt"] = (200, b"")
    now[0] = 24 * 3600 - 1
    assert rules.refusal("http://h/b", "http://h") is not None and asked.count("http://h/robots.txt") == 1
    now[0] = 24 * 3600
    assert rules.refusal("http://h/b", "http://h") is None and asked.count("http://h/robots.txt") == 2
    answers["https://d/robots.txt"] = Drop("fetch.timeout", "https://d/robots.txt: timed out", transient=True)
    refusal = rules.refusal("https://d/x", "https://d")
    assert (refusal.reason, refusal.message, refusal.transient) == (
        "fetch.timeout", "https://d/x: https://d/robots.txt: timed out", True)
    now[0] += 59
    assert rules.refusal("https://d/y", "https://d").reason == "fetch.timeout"  # not asked again yet
    answers["https://d/robots.txt"] = (429, b"")
    now[0] += 1
    assert rules.refusal("https://d/y", "https://d").reason == "fetch.robots_unreachable"
    assert asked.count("https://d/robots.txt") == 2
    rules.forget_failures()  # the next batch asks a failed site again, and only that one
    assert rules.refusal("https://d/z", "https://d") is not None and rules.refusal("http://h/c", "http://h") is None
    assert asked.count("https://d/robots.txt") == 3 and asked.count("http://h/robots.txt") == 2
    big = b"User-agent: *\n# " + b"x" * (MAX_BYTES - 30) + b"\nDisallow: /private/\n"  # cut inside the rule
    answers["http://big/robots.txt"] = (200, big)
    assert len(big) > MAX_BYTES and rules.refusal("http://big/public/a.jpg", "http://big") is None
    assert [site_of(urlsplit(u)) for u in ("HTTP://Ex.COM:80/a", "https://ex.com:443/", "https://u:p@ex.com:8443/",
                                         "http://[::1]:8080/x")] == [
        "http://ex.com", "https://ex.com", "https://ex.com:8443", "http://[::1]:8080"]


def test_site_rules_keep_the_last_thousand_sites_and_two_mebibytes():
    """A URL list of many hosts does not keep every robots.txt (protego holds ~40x its bytes): the
    least recently used site goes past 1,000 sites, or past 2 MiB of robots.txt."""
    from mmprep.stages.fetch.robots import SiteRules

    asked = []
    small, large = b"User-agent: *\nDisallow: /x\n", b"User-agent: *\nDisallow: /x\n" + b"#\n" * 250_000

    def get(url):
        asked.append(url)
        return 200, large if url.startswith("http://large") else small

    rules = SiteRules(get, "mmprep")
    for i in range(1001):
        assert rules.refusal(f"http://s{i}/x", f"http://s{i}").reason == "fetch.robots_disallowed"
    rules.refusal("http://s1000/x", "http://s1000")
    rules.refusal("http://s0/x", "http://s0")  # the oldest: gone
    assert asked.count("http://s0/robots.txt") == 2 and asked.count("http://s1000/robots.txt") == 1
    for i in range(5):  # 500 KB each: four fit
        rules.refusal(f"http://large{i}/x", f"http://large{i}")
    rules.refusal("http://large4/x", "http://large4")
    rules.refusal("http://large0/x", "http://large0")
    assert asked.count("http://large0/robots.txt") == 2 and asked.count("http://large4/robots.txt") == 1


@pytest.mark.parametrize(("key", "value"), [("out", "JPG"), ("schemes", ["ftp"]), ("concurrency", 0),
                                            ("disallowed_header_directives", ["no ai"]), ("user_agent", "/1.0")])
def test_bad_fetch_config_fails_before_work(tmp_path, key, value):
    from mmprep.config import parse_pipeline
    from mmprep.errors import ConfigError

    with pytest.raises(ConfigError) as err:
        parse_pipeline({"stages": [{"stage": "fetch", key: value}]})
    assert key in str(err.value)


def test_url_files_in_a_folder_and_a_rerun_retries_only_the_timed_out(tmp_path, server):
    """Folder input (``x.url`` files), where a rerun with nothing changed normally does nothing at all:
    after a build with transient errors it builds those shards again, and afterwards does nothing."""
    inp = tmp_path / "in"
    inp.mkdir()
    (inp / "a.url").write_text(f"{server.url}/a.jpg\n")
    (inp / "b.url").write_text(f"{server.url}/img")
    (inp / "b.txt").write_text("caption b")
    out = tmp_path / "out"
    server.down.add("/img")
    first = build(fetch_doc(keep_url=False), inp, out)
    assert first["samples_out"] == 1 and json.loads((out / "stats.json").read_text())["errors_to_retry"] == 1
    server.down.clear()
    second = build(fetch_doc(keep_url=False), inp, out)
    assert second["shards_built"] == 1 and second["samples_out"] == 2
    got = members(out)
    assert got["b.png"] == PNG and got["b.txt"] == b"caption b" and "b.url" not in got
    stats = json.loads((out / "stats.json").read_text())
    assert stats["errors_to_retry"] == 0 and stats["run"]["rebuilt_because"] == {"errors to retry": 1}
    hits = dict(server.hits)
    third = build(fetch_doc(keep_url=False), inp, out)
    assert third["shards_built"] == 0 and server.hits == hits


def test_shipped_url_pipeline_gives_square_jpegs(tmp_path, server):
    import cv2
    import yaml

    from tests.conftest import ROOT

    doc = yaml.safe_load((ROOT / "pipelines" / "urls.yaml").read_text())
    rows = [{"key": "a", "url": f"{server.url}/a.jpg", "txt": "one"}, {"key": "b", "url": f"{server.url}/img"},
            {"key": "gone", "url": f"{server.url}/gone.jpg"}]
    summary = build(doc, manifest(tmp_path / "urls.jsonl", rows), tmp_path / "out")
    got = members(tmp_path / "out")
    assert summary["samples_out"] == 2 and errors_of(tmp_path / "out")["gone"]["reason"] == "fetch.http_status"
    images = {name: cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR) for name, data in got.items()
              if name.split(".", 1)[1] in ("jpg", "png")}
    assert {name: img.shape for name, img in images.items()} == {"a.jpg": (256, 256, 3), "b.jpg": (256, 256, 3)}
    assert got["a.txt"] == b"one"


def test_fetch_runs_a_batch_ahead_and_pipelines_default_to_two_workers_per_core(tmp_path, server):
    """Batches of 2 through fetch (one batch ahead, in a thread) and image stages: every sample lands in
    order, errors included; without --workers a fetch pipeline runs two workers per core."""
    import os

    rows = [{"key": f"k{i}", "url": f"{server.url}/{'a.jpg' if i % 3 else 'gone.jpg'}?{i}"} for i in range(9)]
    doc = fetch_doc()
    doc["stages"] += [{"stage": "image.decode"}, {"stage": "image.resize", "size": 8, "mode": "center_crop"}]
    doc["execution"] = {"batch_size": 2}
    out = tmp_path / "out"
    summary = build(doc, manifest(tmp_path / "m.jsonl", rows), out, workers=1)
    got = members(out)
    assert sorted(n for n in got if n.endswith(".jpg")) == [f"k{i}.jpg" for i in (1, 2, 4, 5, 7, 8)]
    assert sorted(errors_of(out)) == ["k0", "k3", "k6"] and summary["samples_out"] == 6
    with __import__("tarfile").open(next((out / "shards").glob("*.tar"))) as tar:
        keys = [m.name.split(".", 1)[0] for m in tar.getmembers()]
    assert list(dict.fromkeys(keys)) == ["k1", "k2", "k4", "k5", "k7", "k8"]  # the records' order
    build(doc, manifest(tmp_path / "m.jsonl", rows), tmp_path / "o2")
    stats = json.loads((tmp_path / "o2" / "stats.json").read_text())
    assert stats["run"]["workers"] == 2 * len(os.sched_getaffinity(0))


def test_http_proxy_from_the_environment_and_no_proxy(tmp_path, server, monkeypatch):
    """HTTP_PROXY is used as urllib uses it (here the test server is the proxy; the host it is asked for
    does not resolve), and NO_PROXY hosts are fetched directly."""
    for name in ("HTTP_PROXY", "http_proxy"):
        monkeypatch.setenv(name, server.url)
    for name in ("NO_PROXY", "no_proxy"):
        monkeypatch.setenv(name, "127.0.0.1")
    rows = [{"key": "via", "url": "http://images.invalid/a.jpg"}, {"key": "direct", "url": f"{server.url}/img"}]
    summary = build(fetch_doc(), manifest(tmp_path / "m.jsonl", rows), tmp_path / "out")
    got = members(tmp_path / "out")
    assert summary["samples_out"] == 2 and got["via.jpg"] == JPG and got["direct.png"] == PNG
    assert server.proxied == ["http://images.invalid/robots.txt", "http://images.invalid/a.jpg"]  # both through it


def test_a_proxy_without_a_scheme_and_with_a_password_is_used_as_urllib_uses_it(tmp_path, server, monkeypatch):
    """``HTTP_PROXY=user:pw@host:port`` (no scheme) is an http proxy, as urllib, requests and curl read it
    (urllib3 refused it: every URL was a transient fetch.unavailable), and its user and password go to it
    as Proxy-Authorization (urllib3 does not send them: the proxy's 407 was a permanent fetch.http_status)."""
    import base64

    proxy = server.url.split("://", 1)[1]
    for name in ("HTTP_PROXY", "http_proxy"):
        monkeypatch.setenv(name, f"me:p%40ss@{proxy}")
    for name in ("NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    rows = [{"key": "via", "url": "http://images.invalid/a.jpg"}]
    out = tmp_path / "out"
    summary = build(fetch_doc(), manifest(tmp_path / "m.jsonl", rows), out)
    assert summary["samples_out"] == 1, (out / "errors.jsonl").read_text()
    assert members(out)["via.jpg"] == JPG
    assert server.proxied == ["http://images.invalid/robots.txt", "http://images.invalid/a.jpg"]
    assert server.proxy_auth == ["Basic " + base64.b64encode(b"me:p@ss").decode()] * 2


def test_no_proxy_with_a_port_as_urllib_reads_it(tmp_path, server, monkeypatch):
    """urllib matches a NO_PROXY entry ``host:port`` against the URL's host and port: such a URL is
    fetched directly (only the host name was matched, so it went to the proxy, here one that is down)."""
    import urllib.request

    for name in ("HTTP_PROXY", "http_proxy"):
        monkeypatch.setenv(name, "http://127.0.0.1:9")
    host = server.url.split("://", 1)[1]
    for name in ("NO_PROXY", "no_proxy"):
        monkeypatch.setenv(name, f"other.invalid,{host}")
    assert urllib.request.proxy_bypass(host) and not urllib.request.proxy_bypass("127.0.0.1")
    rows = [{"key": "direct", "url": f"{server.url}/img"}]
    out = tmp_path / "out"
    summary = build(fetch_doc(), manifest(tmp_path / "m.jsonl", rows), out)
    assert summary["samples_out"] == 1, (out / "errors.jsonl").read_text()
    assert members(out)["direct.png"] == PNG and server.proxied == []


def test_the_closing_line_says_what_a_rerun_retries(tmp_path, server):
    from tests.conftest import run_cli

    rows = [{"key": "ok", "url": f"{server.url}/a.jpg"}, {"key": "busy", "url": f"{server.url}/img"}]
    server.down.add("/img")
    pipe = tmp_path / "p.yaml"
    pipe.write_text(json.dumps(fetch_doc()))
    res = run_cli("build", str(pipe), "-i", str(manifest(tmp_path / "m.jsonl", rows)), "-o", str(tmp_path / "out"))
    assert res.returncode == 0, res.stderr
    lines = res.stdout.strip().splitlines()
    assert lines[-2].startswith("errors by reason: fetch.unavailable 1"), res.stdout
    assert lines[-1] == ("1 of them may pass later (a download timed out, a server was unavailable): a rerun "
                         "without --force retries those samples only")


@pytest.mark.parametrize(("per_host", "most"), [(2, 2), (0, None)])
def test_per_host_bounds_downloads_at_once_from_one_host(tmp_path, server, per_host, most):
    rows = [{"key": f"k{i}", "url": f"{server.url}/wait.jpg?{i}"} for i in range(8)]
    doc = fetch_doc(concurrency=8, per_host=per_host, time_limit=30, timeout=30)
    doc["execution"] = {"batch_size": 8}
    server.want = most or 3  # the first two (or three) meet at the server: no race with its 0.2 s
    summary = build(doc, manifest(tmp_path / "m.jsonl", rows), tmp_path / "out", workers=1)
    assert summary["samples_out"] == 8
    assert server.most == most if most else server.most > 2  # unbounded: up to concurrency (8) at once


def test_a_socks_proxy_in_the_environment_fails_before_work(tmp_path, monkeypatch):
    from tests.conftest import run_cli

    pipe = tmp_path / "p.yaml"
    pipe.write_text(json.dumps(fetch_doc()))
    (tmp_path / "m.jsonl").write_text(json.dumps({"key": "a", "url": "http://example.invalid/a.jpg"}) + "\n")
    res = run_cli("build", str(pipe), "-i", str(tmp_path / "m.jsonl"), "-o", str(tmp_path / "out"),
                  env_extra={"HTTP_PROXY": "socks5://127.0.0.1:1080", "http_proxy": "socks5://127.0.0.1:1080"})
    assert res.returncode == 2 and not (tmp_path / "out").exists()
    assert res.stderr.strip().splitlines()[-1] == (
        "mmprep: config error: stages[0].HTTP_PROXY: socks5:// proxies are not supported by fetch (http:// and "
        "https:// ones are); unset it or point it at an http proxy")
