"""Validate JSON against the schemas of OpenAI's own OpenAPI document (tests/specs/).

The document says OpenAPI 3.1 but still uses 3.0's ``nullable: true``; every such node is
rewritten to "the schema, or null" before JSON Schema validation, otherwise real chunks
(``finish_reason: null``) would fail.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import yaml
from jsonschema import Draft202012Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

SPEC_PATH = Path(__file__).parent / "specs" / "openai-openapi.yaml"
_URI = "urn:openai-openapi"


def _convert(node: Any) -> Any:
    if isinstance(node, dict):
        converted = {k: _convert(v) for k, v in node.items() if k != "nullable"}
        if node.get("nullable") is True:
            return {"anyOf": [converted, {"type": "null"}]}
        return converted
    if isinstance(node, list):
        return [_convert(v) for v in node]
    return node


@functools.cache
def _registry() -> Registry:
    with SPEC_PATH.open("rb") as fh:
        doc = yaml.load(fh, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    resource = Resource.from_contents(_convert(doc), default_specification=DRAFT202012)
    return Registry().with_resource(_URI, resource)


@functools.cache
def validator(schema_name: str) -> Draft202012Validator:
    return Draft202012Validator({"$ref": f"{_URI}#/components/schemas/{schema_name}"},
                                registry=_registry())


def assert_valid(instance: Any, schema_name: str) -> None:
    """Fail with every violation listed when ``instance`` does not match the named schema."""
    errors = sorted(validator(schema_name).iter_errors(instance), key=lambda e: list(e.path))
    assert not errors, f"not a valid {schema_name}: " + "; ".join(
        f"{'/'.join(map(str, e.path)) or '(root)'}: {e.message[:200]}" for e in errors[:5])
