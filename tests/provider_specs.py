"""Validate what we send (and what fakes answer) against the providers' published specs.

The specs travel with the project, in ``tests/provider-specs/`` (sources and licenses in each
folder's SOURCES.md); ``NEWSLETTER_PROVIDER_SPECS`` points elsewhere. Besides JSON-Schema
validation, ``strict`` checks that every key we send is a documented property, because most
specs allow extra properties and a misspelt field would otherwise pass.
"""

from __future__ import annotations

import json
import os
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml
from openapi_schema_validator import OAS30Validator, OAS31Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

SPEC_DIR = Path(
    os.environ.get("NEWSLETTER_PROVIDER_SPECS", Path(__file__).resolve().parent / "provider-specs")
)
SPECS = {
    "postmark": "postmark/server-openapi3.yml",
    "resend": "resend/resend.json",
    "sendgrid": "sendgrid/tsg_mail_v3.json",
    "mailgun": "mailgun/openapi.yaml",
}
URN = "urn:provider-spec"


@cache
def load_spec(provider: str) -> dict:
    path = SPEC_DIR / SPECS[provider]
    if not path.is_file():
        if os.environ.get("CI"):
            pytest.fail(f"provider spec missing: {path}")
        pytest.skip(f"provider spec not found: {path}")
    text = path.read_text(encoding="utf-8")
    return json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)


def _pointer(*parts: str) -> str:
    return "/".join(p.replace("~", "~0").replace("/", "~1") for p in parts)


def _validator(provider: str, pointer: str):
    spec = load_spec(provider)
    registry = Registry().with_resource(
        URN, Resource.from_contents(spec, default_specification=DRAFT202012)
    )
    cls = OAS31Validator if str(spec.get("openapi", "")).startswith("3.1") else OAS30Validator
    return cls({"$ref": f"{URN}#/{pointer}"}, registry=registry), spec


def _resolve(spec: dict, schema: Any) -> Any:
    while isinstance(schema, dict) and "$ref" in schema:
        ref = schema["$ref"].split("#/", 1)[1]
        node: Any = spec
        for part in ref.split("/"):
            node = node[part.replace("~1", "/").replace("~0", "~")]
        schema = node
    return schema


def _schema_at(spec: dict, pointer: str) -> Any:
    return _resolve(spec, {"$ref": f"#/{pointer}"})


def _operation_pointer(spec: dict, path: str, method: str, *parts: str) -> str:
    """The pointer to ``paths/PATH/METHOD/<parts>``, following any ``$ref`` on the way
    (SendGrid's spec keeps request bodies and answers under ``components``)."""
    node: Any = spec["paths"][path][method]
    pointer = ["paths", _pointer(path), method]
    for part in parts:
        node = node[part]
        pointer.append(_pointer(part))
        if isinstance(node, dict) and "$ref" in node:
            pointer = node["$ref"].split("#/", 1)[1].split("/")
            node = _schema_at(spec, "/".join(pointer))
    return "/".join(pointer)


def _undocumented(spec: dict, schema: Any, value: Any, where: str) -> list[str]:
    schema = _resolve(spec, schema)
    if not isinstance(schema, dict):
        return []
    for combo in ("allOf", "anyOf", "oneOf"):
        if combo in schema and isinstance(value, dict):
            merged: dict[str, Any] = {}
            for sub in schema[combo]:
                merged.update(_resolve(spec, sub).get("properties", {}))
            schema = {**schema, "properties": {**schema.get("properties", {}), **merged}}
    problems: list[str] = []
    if isinstance(value, dict) and "properties" in schema:
        props = schema["properties"]
        for key, item in value.items():
            if key not in props:
                if not schema.get("additionalProperties"):
                    problems.append(f"{where}.{key}")
                continue
            problems += _undocumented(spec, props[key], item, f"{where}.{key}")
    elif isinstance(value, list) and "items" in schema:
        for i, item in enumerate(value):
            problems += _undocumented(spec, schema["items"], item, f"{where}[{i}]")
    return problems


def validate_request(provider: str, path: str, method: str, body: Any, *,
                     content_type: str = "application/json", strict: bool = True,
                     documented_elsewhere: frozenset[str] = frozenset()) -> None:
    """Raise AssertionError when ``body`` does not match the spec's request body schema.

    ``documented_elsewhere`` names fields a stale spec lacks but the provider's current
    documentation describes; the caller says where.
    """
    pointer = _operation_pointer(load_spec(provider), path, method.lower(), "requestBody",
                                 "content", content_type, "schema")
    validator, spec = _validator(provider, pointer)
    errors = sorted(validator.iter_errors(body), key=lambda e: list(e.path))
    assert not errors, "; ".join(f"{list(e.path)}: {e.message}" for e in errors[:5])
    if strict:
        extra = [
            path for path in _undocumented(spec, _schema_at(spec, pointer), body, "body")
            if path.rsplit(".", 1)[-1] not in documented_elsewhere
        ]
        assert not extra, f"undocumented fields sent: {extra}"


def validate_response(provider: str, path: str, method: str, status: int, body: Any,
                      content_type: str = "application/json") -> None:
    """Check a fake server's answer against the spec, so the fakes stay honest."""
    pointer = _operation_pointer(load_spec(provider), path, method.lower(), "responses",
                                 str(status), "content", content_type, "schema")
    validator, _ = _validator(provider, pointer)
    errors = list(validator.iter_errors(body))
    assert not errors, "; ".join(f"{list(e.path)}: {e.message}" for e in errors[:5])


def validate_query(provider: str, path: str, method: str, params: dict[str, str], *,
                   documented_elsewhere: frozenset[str] = frozenset(),
                   prefixes_elsewhere: tuple[str, ...] = ()) -> None:
    """Raise AssertionError when a query string sends a parameter the operation does not
    document, leaves out a required one, or gives one a value its schema refuses.

    ``documented_elsewhere`` / ``prefixes_elsewhere``: parameters (or name prefixes, such as
    Postmark's ``metadata_``) that the provider's current documentation describes but the copied
    spec lacks; the caller says where.
    """
    spec = load_spec(provider)
    operation = spec["paths"][path][method.lower()]
    declared = {}
    for parameter in operation.get("parameters", []):
        parameter = _resolve(spec, parameter)
        if parameter.get("in") == "query":
            declared[parameter["name"]] = parameter
    missing = [name for name, p in declared.items() if p.get("required") and name not in params]
    assert not missing, f"required query parameters left out: {missing}"
    for name, value in params.items():
        if name in documented_elsewhere or name.startswith(prefixes_elsewhere):
            continue
        assert name in declared, f"undocumented query parameter sent: {name}"
        schema = _resolve(spec, declared[name].get("schema", {}))
        kind = schema.get("type")
        if kind == "integer":
            assert str(value).lstrip("-").isdigit(), f"{name}={value!r} is not an integer"
            number = int(value)
            if "maximum" in schema:
                assert number <= schema["maximum"], f"{name}={number} > {schema['maximum']}"
            if "minimum" in schema:
                assert number >= schema["minimum"], f"{name}={number} < {schema['minimum']}"
        if "enum" in schema:
            assert value in schema["enum"], f"{name}={value!r} not in {schema['enum']}"
