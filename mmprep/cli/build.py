"""``mmprep build``."""

from __future__ import annotations

import json
import os
from pathlib import Path

import typer

from mmprep.cli import app, fail_config, setup_logging
from mmprep.errors import ConfigError


@app.command()
def build(
    pipeline: Path = typer.Argument(..., help="Pipeline YAML."),
    input: str = typer.Option(None, "--input", "-i", help="Folder or manifest; overrides input.path."),
    output: Path = typer.Option(..., "--output", "-o", help="Output folder (shards/, index.parquet, stats.json...)."),
    workers: int = typer.Option(None, "--workers", "-w", min=1, help="Worker processes (default: all cores)."),
    executor: str = typer.Option(None, "--executor", help="local or dask (a LocalCluster unless --scheduler)."),
    scheduler: str = typer.Option(None, "--scheduler", envvar="MMPREP_SCHEDULER",
                                  help="Dask scheduler address tcp://HOST:PORT."),
    cache: Path = typer.Option(None, "--cache", help="Cache folder (default OUT/.cache); share it between builds."),
    force: bool = typer.Option(False, "--force", help="Rebuild every shard and ignore cached results."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Say what would be built and why; write nothing."),
    as_json: bool = typer.Option(False, "--json", help="Print a machine-readable summary at the end."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Only warnings and errors."),
) -> None:
    """Run a pipeline over a folder or manifest and write WebDataset shards plus index, stats and errors."""
    from mmprep.build import BuildOptions, run_build
    from mmprep.config import load_pipeline

    setup_logging(quiet)
    _stop_on_sigterm()
    if executor not in (None, "local", "dask"):
        fail_config(ConfigError("--executor", f"must be local or dask, not {executor!r}"))
    try:
        spec = load_pipeline(pipeline)
        opts = BuildOptions(input=input, output=str(output), workers=workers, executor=executor,
                            scheduler=scheduler or None, cache_dir=str(cache) if cache else None, force=force,
                            progress=not quiet and not dry_run, dry_run=dry_run)
        summary = run_build(spec, opts)
    except ConfigError as exc:
        fail_config(exc)
    except Terminated:  # stopped like Ctrl-C, but a job scheduler must see SIGTERM's own status
        raise SystemExit(128 + 15) from None
    except OSError as exc:  # writing the reports: a full disk, a quota (a shard's own failure is reported per shard)
        where = f" ({exc.filename})" if exc.filename else ""
        typer.echo(f"mmprep: build failed: {exc.strerror or exc}{where}; the finished shards are kept, and a rerun "
                   "finishes the build", err=True)
        raise typer.Exit(1) from None
    if as_json:
        typer.echo(json.dumps(summary, ensure_ascii=False))
    elif dry_run:
        typer.echo(_planned(summary))
    else:
        typer.echo(_built(summary, output))
    if not summary.get("ok", True):
        raise typer.Exit(1)


def _built(summary: dict, output: Path) -> str:
    """The closing line, and the reason codes of the samples dropped and the fields omitted."""
    # a shard is several tars past output.max_bytes: count the shards the plan has, and the tars apart
    planned = summary["shards_built"] + summary["shards_skipped"] + len(summary.get("failed_shards") or ())
    tars = f"{summary['shards']} tars; " if summary["shards"] != planned else ""
    line = (f"{summary['samples_out']}/{summary['samples_in']} samples in {planned} shards "
            f"({tars}{summary['shards_skipped']} already complete), {summary['samples_dropped']} dropped, "
            f"{_failed(summary)}{summary['seconds']:.1f}s -> {os.path.join(str(output), 'shards')}")
    failed = summary.get("failed_shards") or ()
    if failed:
        line += f"\nfailed: {failed[0]['shard']}: {failed[0]['error']}" + (
            f" (and {len(failed) - 1} more shards; see the log above)" if len(failed) > 1 else "")
    reasons = summary.get("errors_by_reason") or {}
    if reasons:
        top = sorted(reasons.items(), key=lambda kv: (-kv[1], kv[0]))
        shown = ", ".join(f"{reason} {n}" for reason, n in top[:6]) + (", ..." if len(top) > 6 else "")
        line += f"\nerrors by reason: {shown} (details in {os.path.join(str(output), 'errors.jsonl')})"
    if summary.get("errors_to_retry"):
        line += (f"\n{summary['errors_to_retry']} of them may pass later (a download timed out, a server was "
                 "unavailable): a rerun without --force retries those samples only")
    return line


def _planned(plan: dict) -> str:
    why = "".join(f"; {n} {reason}" for reason, n in plan["rebuilt_because"].items())
    line = (f"dry run: {plan['samples_in']} samples in {plan['planned_shards']} planned shards: "
            f"{plan['shards_complete']} complete, "
            f"{plan['shards_to_build']} to build ({plan['samples_to_build']} samples{why})")
    if plan["records_changed"]:
        line += f", {plan['records_changed']} records new or changed"
    if plan["stale_tars"]:
        line += f", {plan['stale_tars']} stale tar(s) to remove"
    if not plan["shards_to_build"] and not plan["stale_tars"]:
        line += "; nothing to build" if plan["reports_current"] else "; the reports would be merged again"
    return line


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where Ctrl-C's KeyboardInterrupt would be (every clean-up that stops on Ctrl-C stops
    on it); the build then exits 143 (128 + 15), not Ctrl-C's 130, so a job scheduler can tell them apart."""


def _stop_on_sigterm() -> None:
    """A job scheduler's SIGTERM stops the build as Ctrl-C does: the workers are stopped and finished
    shards kept (a rerun resumes). Python's default would end the driver alone, and its workers and
    forkserver, which hold each other's pipes open, would run on forever."""
    import signal
    import threading

    def stop(signum: int, frame: object) -> None:
        raise Terminated(f"signal {signum}")

    if threading.current_thread() is threading.main_thread() and signal.getsignal(signal.SIGTERM) == signal.SIG_DFL:
        signal.signal(signal.SIGTERM, stop)


def _failed(summary: dict) -> str:
    """``N failed (K shards), `` in the closing line: samples of shards that failed are in no tar."""
    shards = len(summary.get("failed_shards") or ())
    return f"{summary.get('samples_failed', 0)} failed ({shards} shards), " if shards else ""
