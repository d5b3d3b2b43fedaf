"""The pipeline JSON Schema and stage descriptions, both generated from the stages' config models."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from mmprep.stage import registry

SCHEMA_PATH = Path(__file__).resolve().parent.parent / "schemas" / "pipeline.schema.json"


def pipeline_schema_text() -> str:
    from mmprep.config import pipeline_model  # (and YAML, the sections): not needed to describe stages

    schema = pipeline_model().model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "mmprep pipeline"
    return json.dumps(schema, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def _type(prop: dict[str, Any]) -> str:
    if "anyOf" in prop:
        return " | ".join(_type(p) for p in prop["anyOf"])
    if "enum" in prop:
        return "|".join(map(str, prop["enum"]))
    if prop.get("type") == "array":
        return f"list[{_type(prop.get('items', {}))}]"
    return prop.get("type", prop.get("$ref", "any").rsplit("/", 1)[-1])


def describe_stages() -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for name, cls in registry().items():
        props = cls.Config.model_json_schema().get("properties", {})
        params = {}
        for pname, field in cls.Config.model_fields.items():
            default = None if field.is_required() else field.get_default(call_default_factory=True)
            if hasattr(default, "model_dump"):
                default = default.model_dump(mode="json")
            params[pname] = {"type": _type(props.get(pname, {})), "default": default,
                             "required": field.is_required(), "description": field.description or ""}
        out[name] = {"summary": (cls.__doc__ or "").strip().splitlines()[0] if cls.__doc__ else "",
                     "version": cls.version, "cacheable": cls.cacheable, "batched": cls.batched,
                     "reads": list(cls.reads), "writes": list(cls.writes), "params": params}
    return out
