"""JSON Schemas of Guildhall's wire formats, and a cached validator.

One file per event type (`events/`) and per request body (`requests/`),
mirroring the spec's own split. This package imports nothing of ours, so the
server, the client and the tests can all use it.
"""

from __future__ import annotations

import json
from functools import lru_cache
from importlib import resources
from typing import Any

import jsonschema
from jsonschema.validators import validator_for

BAD_JSON = "M_BAD_JSON"


class SchemaError(ValueError):
    """A document that breaks its schema; rendered as 400 M_BAD_JSON."""

    status = 400
    errcode = BAD_JSON

    def __init__(self, schema: str, message: str, path: str) -> None:
        super().__init__(f"{schema}: {message} at {path}")
        self.schema = schema
        self.path = path


def available(kind: str) -> list[str]:
    """Names of the schemas of one kind ("events", "requests")."""
    folder = resources.files(__package__).joinpath(kind)
    return sorted(p.name[: -len(".json")] for p in folder.iterdir() if p.name.endswith(".json"))


@lru_cache(maxsize=None)
def load(kind: str, name: str) -> dict[str, Any]:
    text = resources.files(__package__).joinpath(kind, f"{name}.json").read_text("utf-8")
    schema: dict[str, Any] = json.loads(text)
    return schema


@lru_cache(maxsize=None)
def _validator(kind: str, name: str) -> Any:
    schema = load(kind, name)
    cls = validator_for(schema)
    cls.check_schema(schema)
    return cls(schema)


def has_schema(kind: str, name: str) -> bool:
    return resources.files(__package__).joinpath(kind, f"{name}.json").is_file()


def validate(kind: str, name: str, document: Any) -> None:
    """Raise SchemaError (M_BAD_JSON) unless `document` matches the schema."""
    error = jsonschema.exceptions.best_match(_validator(kind, name).iter_errors(document))
    if error is not None:
        path = "$" + "".join(f"[{p!r}]" for p in error.absolute_path)
        raise SchemaError(f"{kind}/{name}", error.message, path)


def validate_event_content(event_type: str, content: Any) -> None:
    """Validate an event's content where we have a schema for its type."""
    if has_schema("events", event_type):
        validate("events", event_type, content)
