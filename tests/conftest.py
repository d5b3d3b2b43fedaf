"""Shared fixtures: corpora made in code, pipelines written to YAML, the CLI run as a real process."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from mmprep.build import BuildOptions, run_build
from mmprep.config import parse_pipeline
from mmprep.testing.corpus import multimodal_corpus

ROOT = Path(__file__).resolve().parent.parent


def write_pipeline(path: Path, doc: dict) -> Path:
    path.write_text(yaml.safe_dump(doc, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return path


def build(doc: dict, inp: Path, out: Path, **opts) -> dict:
    """Run a build in this process through the same API as the CLI; returns the summary."""
    opts.setdefault("progress", False)
    return run_build(parse_pipeline(doc), BuildOptions(input=str(inp), output=str(out), **opts))


def run_cli(*args: str, timeout: float = 300, env_extra: dict | None = None, **kw) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env_extra or {})}
    return subprocess.run([sys.executable, "-m", "mmprep", *args], capture_output=True, text=True, cwd=ROOT,
                          timeout=timeout, env=env, stdin=subprocess.DEVNULL, **kw)


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    root = tmp_path / "corpus"
    multimodal_corpus(root, 8)
    return root


@pytest.fixture
def demo_doc() -> dict:
    return yaml.safe_load((ROOT / "pipelines" / "demo.yaml").read_text())


def shard_members(out: Path) -> dict[str, bytes]:
    """Every member of a build's shards (``OUT/shards/*.tar``), by member name."""
    import tarfile

    got = {}
    for path in sorted((out / "shards").glob("*.tar")):
        with tarfile.open(path) as tar:
            for m in tar.getmembers():
                got[m.name] = tar.extractfile(m).read()
    return got
