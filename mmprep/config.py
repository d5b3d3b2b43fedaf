"""The pipeline spec: YAML in, typed and validated models out, before any work starts.

Every stage's parameters are that stage's ``Config`` model, so the stage list is a union
discriminated by ``stage:`` (of the stages a document names, when it is parsed; of all of them for
the JSON Schema). Any error (unknown stage, unknown key, bad value) becomes one
:class:`ConfigError` naming the key, e.g. ``stages[1].size: Input should be greater than 0``.
"""

from __future__ import annotations

import functools
import hashlib
import json
from pathlib import Path
from typing import Annotated, Any, Literal, Union

import yaml
from pydantic import BaseModel, ByteSize, ConfigDict, Field, ValidationError, field_validator, model_validator

from mmprep.errors import ConfigError
from mmprep.stage import Stage, get_stage, registered, registry

FIELD_PATTERN = r"^[a-z0-9_]+(\.[a-z0-9_]+)*$"


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class InputSpec(Section):
    """Where samples come from. ``mmprep build --input`` overrides ``path``."""

    path: str | None = Field(None, description="A folder (files sharing a path stem form a sample) or a manifest file.")
    format: Literal["auto", "folder", "jsonl", "csv", "parquet"] = "auto"
    key_column: str = Field("key", description="Manifest column holding the sample key.")
    path_columns: list[str] | None = Field(
        None, description="Manifest columns holding file paths. Default: columns named for a media type "
        "(jpg, png, wav, mp4, srt...); every other column holds an inline value (caption, label).",
    )
    include: list[str] = Field(default_factory=list, description="Glob patterns a file must match (folder input).")
    exclude: list[str] = Field(default_factory=list, description="Glob patterns that skip a file (folder input).")


class EncodingSpec(Section):
    jpeg_quality: int = Field(95, ge=1, le=100)
    webp_quality: int = Field(90, ge=1, le=100)
    png_compression: int = Field(3, ge=0, le=9)
    npy_dtype: Literal["keep", "float16", "float32"] = "keep"


class OutputSpec(Section):
    # 200: a tar's temporary name adds 32 bytes (.NAME-000000_01.tar.HEX.tmp), and a file name has 255
    name: str = Field("shard", pattern=r"^[A-Za-z0-9_-]+$", max_length=200,
                      description="Shard names are NAME-000000.tar.")
    max_samples: int = Field(1000, ge=1, description="Samples per shard (the unit of work).")
    max_bytes: ByteSize | None = Field(
        None, description="Roll over to NAME-000000_01.tar... when a shard grows past this size."
    )
    fields: list[Annotated[str, Field(pattern=FIELD_PATTERN)]] | None = Field(
        None, description="Fields to write; all when not set."
    )
    required: list[Annotated[str, Field(pattern=FIELD_PATTERN)]] = Field(
        default_factory=list, description="A sample lacking one of these is dropped with reason field.missing."
    )
    optional: list[Annotated[str, Field(pattern=FIELD_PATTERN)]] = Field(
        default_factory=list, description="Fields a stage may omit (with a reason) while keeping the sample."
    )
    meta: bool = Field(True, description="Write each sample's metadata as KEY.meta.json.")
    encoding: EncodingSpec = EncodingSpec()

    @field_validator("max_bytes")
    @classmethod
    def _some_bytes(cls, value: ByteSize | None) -> ByteSize | None:
        if value is not None and value < 1:  # 0 meant no limit, as leaving it out does
            raise ValueError("must be at least 1 byte; leave it out for no limit")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> OutputSpec:
        both = sorted(set(self.required) & set(self.optional))
        if both:
            raise ValueError(f"{both[0]!r} is both required and optional")
        if self.fields is not None:
            unwritten = [f for f in self.required if f not in self.fields]
            if unwritten:  # every sample would be dropped
                raise ValueError(f"required field {unwritten[0]!r} is not in fields, so no sample could have it")
        return self


class ExecutionSpec(Section):
    executor: Literal["local", "dask"] = "local"
    workers: int | None = Field(None, ge=1, description="Worker processes; all cores when not set.")
    scheduler: str | None = Field(None, description="Address of a Dask scheduler (tcp://HOST:PORT).")
    batch_size: int = Field(32, ge=1, description="Samples that go through the stages together.")


class CacheSpec(Section):
    enabled: bool = True
    dir: str | None = Field(None, description="Defaults to OUT/.cache; share one between builds.")
    final: bool = Field(False, description="Also store each record's finished members (a second copy of the "
                        "output), so touched, moved or re-sharded inputs skip every stage; unchanged files are "
                        "copied from the previous shard without it.")
    stages: Literal["auto", "all"] = Field(
        "auto", description="auto: store the output of the stages marked cacheable (audio features, "
        "embeddings, video frames and clips); all: of every stage, decoded pixels and audio included "
        "(disk-hungry), so that changing any stage never recomputes the ones before it.")


def pipeline_model() -> type[BaseModel]:
    """The PipelineSpec model, with the stage union made from the registry."""
    return _pipeline_model(tuple(registry()))


@functools.cache
def _pipeline_model(names: tuple[str, ...]) -> type[BaseModel]:
    stage_specs = tuple(get_stage(name).Spec for name in names)
    stage_union = Annotated[Union[stage_specs], Field(discriminator="stage")]  # noqa: UP007

    class PipelineSpec(Section):
        """An mmprep pipeline: input, ordered stages, output, execution and cache settings."""

        name: str = "pipeline"
        description: str = ""
        input: InputSpec = InputSpec()
        stages: list[stage_union] = Field(default_factory=list)  # type: ignore[valid-type]
        output: OutputSpec = OutputSpec()
        execution: ExecutionSpec = ExecutionSpec()
        cache: CacheSpec = CacheSpec()

    return PipelineSpec


def _loc(loc: tuple[Any, ...]) -> str:
    names = registered()  # the stage names a union can put into a location are all registered
    parts: list[str] = []
    for item in loc:
        if isinstance(item, int):
            parts[-1:] = [f"{parts[-1]}[{item}]"] if parts else [f"[{item}]"]
        elif item in names or str(item).startswith("function-"):
            continue
        else:
            parts.append(str(item))
    return ".".join(parts)


def parse_pipeline(data: Any, *, source: str = "pipeline") -> BaseModel:
    """Validate a loaded YAML document; raise ConfigError with the first bad key."""
    if not isinstance(data, dict):
        raise ConfigError("", f"{source}: expected a mapping at the top level")
    names = _known_stages(data)
    try:
        return (_pipeline_model(names) if names else pipeline_model()).model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        msg = err["msg"]
        if err["type"] == "union_tag_invalid":
            msg = f"unknown stage {err['input'].get('stage')!r} (`mmprep stages` lists them)"
        elif err["type"] == "union_tag_not_found":
            msg = "each stage needs a `stage:` name"
        elif err["type"] == "extra_forbidden":
            msg = "unknown key"
        elif err["type"] == "value_error":  # a validator's message, less pydantic's "Value error, "
            msg = str(err.get("ctx", {}).get("error") or msg.removeprefix("Value error, "))
        more = f" (and {len(exc.errors()) - 1} more)" if len(exc.errors()) > 1 else ""
        raise ConfigError(_loc(err["loc"]) or "pipeline", f"{msg}{more}") from None


def _known_stages(data: dict[str, Any]) -> tuple[str, ...]:
    """The registered stage names a document uses, sorted; their modules are imported, no others.

    Validating against a union of just these gives the same model and the same errors as the union of
    every stage (an unknown name is still ``union_tag_invalid``) while building only their validators
    (all forty took ~0.15 s of every command). Empty when the document names none: then the full union.
    """
    entries = data.get("stages")
    if not isinstance(entries, list):
        return ()
    names = set()
    for entry in entries:
        name = entry.get("stage") if isinstance(entry, dict) else None
        if isinstance(name, str):
            try:
                get_stage(name)
            except ConfigError:  # unknown: the union reports it
                continue
            names.add(name)
    return tuple(sorted(names))


def parse_validated(data: dict[str, Any]) -> BaseModel:
    """A document the driver validated already, parsed again in a worker: only the stage modules it
    names are imported (the forkserver has them loaded already)."""
    return parse_pipeline(data)


def load_pipeline(path: str | Path) -> BaseModel:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError("pipeline", f"cannot read {path}: {exc.strerror}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError("pipeline", f"{path} is not UTF-8 text (byte {exc.start}): save it as UTF-8") from None
    try:
        data = yaml.load(text, Loader=_Loader)  # noqa: S506 - a SafeLoader
    except yaml.YAMLError as exc:
        raise ConfigError("pipeline", f"{path} is not valid YAML: {exc}".replace("\n", " ")) from None
    except _Repeated as exc:
        key, first, again = exc.args
        raise ConfigError(str(key), f"is given twice in {path} (lines {first} and {again}); YAML would keep the "
                          "second silently: remove one") from None
    return parse_pipeline(data, source=str(path))


class _Repeated(Exception):
    """A mapping key given twice: (key, first line, second line)."""


class _Loader(yaml.SafeLoader):
    """``yaml.safe_load``, but a key given twice in one mapping is refused: PyYAML keeps the last one, so
    a second ``output:`` block, or a stage parameter set twice, silently replaced the first."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        lines: dict[Any, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":  # ``<<: *defaults``: overriding those is the point
                continue
            key = self.construct_object(key_node, deep=True)
            line = key_node.start_mark.line + 1
            try:
                if key in lines:
                    raise _Repeated(key, lines[key], line)
                lines[key] = line
            except TypeError:  # an unhashable key: the constructor's own error follows
                pass
        return super().construct_mapping(node, deep)


def instantiate(spec: BaseModel) -> list[Stage]:
    """Stage objects for a validated spec, after each stage's own pre-flight check."""
    stages: list[Stage] = []
    for i, stage_spec in enumerate(spec.stages):
        cls = get_stage(stage_spec.stage)
        stage = cls(stage_spec)
        try:
            stage.check()
        except ConfigError as exc:
            raise ConfigError(f"stages[{i}].{exc.key}" if exc.key else f"stages[{i}]", exc.message) from None
        stages.append(stage)
    _check_created(stages)
    return stages


def _check_created(stages: list[Stage]) -> None:
    """No two stages write the same field or file of their own (``Stage.creates``): two ``embed`` stages of
    one field without ``name``, two ``text.vocab`` with one ``output`` or both with ``tokenizer_json``."""
    first: dict[str, int] = {}
    for i, stage in enumerate(stages):
        for key, made in stage.creates():
            if made in first:
                raise ConfigError(f"stages[{i}].{key}", f"writes {made} as stages[{first[made]}] does: one "
                                  f"would overwrite the other; change {key} on one of them")
            first[made] = i


def stage_fingerprint(stage: Stage) -> str:
    """Name + version + parameters: what decides whether a cached output is still valid."""
    doc = json.dumps([stage.name, stage.version, stage.params()], sort_keys=True)
    return hashlib.blake2b(doc.encode(), digest_size=16).hexdigest()
