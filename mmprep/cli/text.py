"""``mmprep vocab``: re-cut OUT/vocab.json from the per-shard token counts of a finished build."""

from __future__ import annotations

from pathlib import Path

import typer

from mmprep.cli import app, fail_config, setup_logging
from mmprep.errors import ConfigError


@app.command()
def vocab(
    out: Path = typer.Argument(..., help="Output folder of a build whose pipeline had a text.vocab stage."),
    min_count: int = typer.Option(1, "--min-count", min=1, help="Leave out tokens seen fewer times."),
    max_size: int = typer.Option(None, "--max-size", min=1, help="Most entries, special tokens included."),
    special: list[str] = typer.Option(None, "--special", help="Special tokens, first ids (repeat the option); "
                                                             "default <pad> <unk> <bos> <eos>."),
    unk: str = typer.Option("<unk>", "--unk", help="Unknown token (must be one of the special tokens)."),
    output: Path = typer.Option(None, "--output", "-o", help="Where to write (default OUT/vocab.json)."),
    tokenizer_json: Path = typer.Option(None, "--tokenizer-json", help="Also write a HF tokenizer.json here."),
    lowercase: bool = typer.Option(False, "--lowercase", help="Merge tokens lowercased (for recounted shards)."),
    quiet: bool = typer.Option(False, "--quiet", "-q"),
) -> None:
    """Rebuild a vocabulary from a finished build's shard counts, with other limits, without rebuilding."""
    from mmprep.stages.text.vocab import DEFAULT_SPECIALS
    from mmprep.text import vocab as vocablib

    setup_logging(quiet)
    specials = list(special) if special else list(DEFAULT_SPECIALS)
    if unk and unk not in specials:
        fail_config(ConfigError("--unk", f"{unk!r} is not one of the special tokens {specials}"))
    if max_size is not None and max_size < len(dict.fromkeys(specials)):
        fail_config(ConfigError("--max-size", f"{max_size} is below the {len(dict.fromkeys(specials))} special "
                                              "tokens it includes"))
    if not (out / ".parts").is_dir():
        fail_config(ConfigError("OUT", f"{out} is no build's output folder (no .parts/): no text.vocab counts to read"))
    summaries = vocablib.shard_summaries(out, "text.vocab", lowercase=lowercase)
    if not summaries:
        fail_config(ConfigError("OUT", f"{out} has no text.vocab shard counts (.parts/*.json)"))
    counts, docs = vocablib.merge(summaries)
    doc = vocablib.build(counts, documents=docs, min_count=min_count, max_size=max_size, special_tokens=specials,
                         unk_token=unk or None)
    path = vocablib.write(doc, output or out / "vocab.json")
    if tokenizer_json:
        vocablib.to_hf_tokenizer(doc).save(str(tokenizer_json))
    typer.echo(f"{len(doc['vocab'])} entries ({doc['distinct_tokens']} distinct tokens, {doc['total_tokens']} "
               f"tokens in {docs} documents, {len(summaries)} shards) -> {path}")
