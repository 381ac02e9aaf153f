"""A small JSON Schema validator for the offline check of the Kubernetes manifests.

`jsonschema` and `kubeconform` are not in the lock file, and the manifests need only a subset of
JSON Schema (draft 7 keywords): type, properties, required, additionalProperties, items, enum,
const, minimum, maximum, minItems, pattern, anyOf and `$ref` to `#/definitions/…`. The schema it
reads (`tests/support/k8s_schema.json`) is written here from the Kubernetes API reference for the
fields the manifests use, closed with `additionalProperties: false` so a misspelt field fails.
"""

from __future__ import annotations

import re
from typing import Any

TYPES: dict[str, tuple[type, ...]] = {
    "object": (dict,), "array": (list,), "string": (str,), "boolean": (bool,),
    "integer": (int,), "number": (int, float), "null": (type(None),),
}


def _is(value: Any, kind: str) -> bool:
    if kind in ("integer", "number") and isinstance(value, bool):
        return False  # JSON has no "true is 1"
    return isinstance(value, TYPES[kind])


def errors(value: Any, schema: dict[str, Any], *, root: dict[str, Any] | None = None,
           at: str = "$") -> list[str]:
    """Every violation of `schema` by `value`, as `path: what` (empty when valid)."""
    root = schema if root is None else root
    if "$ref" in schema:
        ref = schema["$ref"]
        if not ref.startswith("#/definitions/"):
            raise ValueError(f"unsupported $ref {ref!r}")
        return errors(value, root["definitions"][ref.split("/")[-1]], root=root, at=at)
    out: list[str] = []
    kinds = schema.get("type")
    if kinds is not None:
        kinds = [kinds] if isinstance(kinds, str) else kinds
        if not any(_is(value, k) for k in kinds):
            return [f"{at}: expected {'/'.join(kinds)}, got {type(value).__name__}"]
    if "const" in schema and value != schema["const"]:
        out.append(f"{at}: must be {schema['const']!r}, got {value!r}")
    if "enum" in schema and value not in schema["enum"]:
        out.append(f"{at}: must be one of {schema['enum']!r}, got {value!r}")
    if isinstance(value, str) and "pattern" in schema and not re.search(schema["pattern"], value):
        out.append(f"{at}: {value!r} does not match {schema['pattern']!r}")
    if _is(value, "number"):
        if "minimum" in schema and value < schema["minimum"]:
            out.append(f"{at}: {value} is below {schema['minimum']}")
        if "maximum" in schema and value > schema["maximum"]:
            out.append(f"{at}: {value} is above {schema['maximum']}")
    if isinstance(value, dict):
        props = schema.get("properties", {})
        for name in schema.get("required", []):
            if name not in value:
                out.append(f"{at}: missing required {name!r}")
        extra = schema.get("additionalProperties", True)
        for name, item in value.items():
            where = f"{at}.{name}"
            if name in props:
                out += errors(item, props[name], root=root, at=where)
            elif extra is False:
                out.append(f"{where}: unknown field")
            elif isinstance(extra, dict):
                out += errors(item, extra, root=root, at=where)
    if isinstance(value, list):
        if len(value) < schema.get("minItems", 0):
            out.append(f"{at}: fewer than {schema['minItems']} items")
        if "items" in schema:
            for i, item in enumerate(value):
                out += errors(item, schema["items"], root=root, at=f"{at}[{i}]")
    if "anyOf" in schema:
        options = [errors(value, s, root=root, at=at) for s in schema["anyOf"]]
        if all(options):
            out.append(f"{at}: matches none of anyOf ({min(options, key=len)[0]})")
    return out
