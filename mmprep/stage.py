"""The one stage contract and the registry that maps YAML names onto stage classes.

A stage is a small class::

    @register
    class Resize(Stage):
        name = "image.resize"            # the YAML ``stage:`` value
        version = "1"                    # bump when output changes for the same input + params
        reads = ("image",)               # modalities (or exact field names) it needs
        writes = ("image",)
        cacheable = False                # worth storing its output in the content cache?

        class Config(StageConfig):       # typed parameters; the JSON Schema is made from these
            size: int = 256

        def process(self, sample):       # return the sample (changed), a list of samples, or
            ...                          # raise Drop(reason, message[, field=...])

A stage that runs well in batches (features, embeddings, on a GPU) overrides ``process_batch``.
A sample that has none of the fields a stage ``reads`` passes through that stage untouched.
"""

from __future__ import annotations

import importlib
import pkgutil
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, create_model

from mmprep.errors import ConfigError, Drop
from mmprep.sample import RESERVED, Sample, fields_of

_REGISTRY: dict[str, type[Stage]] = {}
_DISCOVERED = False


class StageConfig(BaseModel):
    """Parameters of a stage. Unknown keys are an error, so a typo never goes unnoticed, and so is an
    infinite or NaN number (YAML's ``.inf``, ``.nan``: no parameter means "no limit" by it).

    Validators are built on first use (``defer_build``): a command that reads one pipeline builds
    only its stages' models, not the forty of every imported stage module."""

    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True, allow_inf_nan=False)


class Stage:
    name: ClassVar[str]
    version: ClassVar[str] = "1"
    reads: ClassVar[tuple[str, ...]] = ()
    writes: ClassVar[tuple[str, ...]] = ()
    cacheable: ClassVar[bool] = False
    batched: ClassVar[bool] = False
    # waits on the network, not the CPU: as a pipeline's first stage it runs one batch ahead of the
    # others (in a thread of the worker), so that its waiting overlaps their work
    io_bound: ClassVar[bool] = False
    summarizes: ClassVar[bool] = False  # keeps per-shard summaries: sees replayed samples, is never skipped
    Config: ClassVar[type[StageConfig]] = StageConfig
    # The model actually validated from YAML: ``Config`` plus ``stage: Literal[name]``.
    Spec: ClassVar[type[StageConfig]]

    def __init__(self, config: StageConfig):
        self.config = config

    def check(self) -> None:
        """Fail before any work starts (raise ConfigError) if a resource this config needs is missing."""

    def setup(self) -> None:
        """Load heavy things (models, dictionaries). Runs once per worker process, not in the driver."""

    def imports(self) -> tuple[str, ...]:
        """Modules ``setup`` imports (e.g. ``cv2``). A local build imports them once in the process its
        workers fork from, so each worker starts with them loaded instead of importing them again."""
        return ()

    def begin_shard(self) -> None:
        """Reset per-shard accumulators (for stages that summarize, e.g. a vocabulary count)."""

    def end_shard(self) -> dict[str, Any] | None:
        """A JSON-able summary of this shard, kept in its part file so resumed shards still count."""
        return None

    def replay(self, sample: Sample) -> None:
        """See a finished sample that skipped the stages: its members came from the cache or from the
        previous build of its shard. ``sample`` maps ``__key__`` and each field to the member bytes.
        Summarizing stages (``summarizes = True``) override this so ``end_shard`` counts every sample."""

    def finalize(self, summaries: list[dict[str, Any]], out_dir: Any) -> None:
        """Driver side, after all shards: combine every shard's summary (e.g. write OUT/vocab.json)."""

    def reports(self) -> tuple[str, ...]:
        """Files ``finalize`` writes, relative to OUT: a rerun writes them again when one is missing or
        changed, even if no shard needs building."""
        return ()

    def creates(self) -> tuple[tuple[str, str], ...]:
        """``(config key, name)`` of each field or file this stage writes that no other stage of the
        pipeline may write too (one would silently overwrite the other); checked before any work."""
        return ()

    def applies(self, sample: Sample) -> bool:
        """Whether the sample has something for this stage to read."""
        if not self.reads:
            return True
        for want in self.reads:
            if want in sample or fields_of(sample, want):
                return True
        return False

    def process(self, sample: Sample) -> Sample | list[Sample]:
        raise NotImplementedError

    def process_batch(self, samples: list[Sample]) -> list[Sample | list[Sample] | Drop]:
        """Process many samples at once; one result (or a Drop) per input, in order."""
        out: list[Sample | list[Sample] | Drop] = []
        for sample in samples:
            try:
                out.append(self.process(sample))
            except Drop as drop:
                out.append(drop)
        return out

    def params(self) -> dict[str, Any]:
        """Parameters as JSON-able data, for cache keys and reports."""
        return self.config.model_dump(mode="json", exclude={"stage"})


def register(cls: type[Stage]) -> type[Stage]:
    """Class decorator: make a stage findable by its ``name``."""
    name = cls.name
    if name in _REGISTRY and _REGISTRY[name] is not cls:
        raise RuntimeError(f"stage name {name!r} registered twice")
    cls.Spec = create_model(
        f"{cls.__name__}Spec",
        __base__=cls.Config,
        __doc__=(cls.__doc__ or name).strip().splitlines()[0],
        stage=(Literal[name], ...),
    )
    _REGISTRY[name] = cls
    return cls


def discover() -> None:
    """Import every module under ``mmprep.stages`` so their ``@register`` calls run."""
    global _DISCOVERED
    if _DISCOVERED:
        return
    import mmprep.stages as pkg

    for info in pkgutil.walk_packages(pkg.__path__, prefix="mmprep.stages."):
        importlib.import_module(info.name)
    _DISCOVERED = True


def registry() -> dict[str, type[Stage]]:
    discover()
    return dict(sorted(_REGISTRY.items()))


def get_stage(name: str) -> type[Stage]:
    """The stage class. Its module is imported when it is not loaded yet (``mmprep.stages.MODULES``
    names it); every stage module only for a name that table lacks."""
    if name not in _REGISTRY and isinstance(name, str):
        from mmprep.stages import MODULES

        if name in MODULES:
            importlib.import_module(MODULES[name])
    if name not in _REGISTRY:
        discover()
    if name not in _REGISTRY:
        raise ConfigError("stage", f"unknown stage {name!r}; `mmprep stages` lists them")
    return _REGISTRY[name]


def registered() -> frozenset[str]:
    """The names of the stages whose modules are imported so far (no discovery)."""
    return frozenset(_REGISTRY)


def make_stage(name: str, **params: Any) -> Stage:
    """A stage from its YAML name and parameters, checked and set up as a worker would: for using one
    stage on its own (notebooks, tests, benchmarks)."""
    cls = get_stage(name)
    stage = cls(cls.Spec(stage=name, **params))
    stage.check()
    stage.setup()
    return stage


def summary_slots(stages: list[Stage]) -> list[str]:
    """Where each stage's per-shard summary is filed: its name, ``name#2``... for repeats."""
    seen: dict[str, int] = {}
    slots = []
    for stage in stages:
        seen[stage.name] = seen.get(stage.name, 0) + 1
        slots.append(stage.name if seen[stage.name] == 1 else f"{stage.name}#{seen[stage.name]}")
    return slots


def data_fields(sample: Sample) -> list[str]:
    return sorted(k for k in sample if k not in RESERVED)
