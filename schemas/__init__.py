"""JSON Schemas of Guildhall's wire formats, and a cached validator.

One file per event type (`events/`) and per request body (`requests/`),
mirroring the spec's own split. This package imports nothing of ours, so the
server, the client and the tests can all use it.
"""

from __future__ import annotations

import json
from functools import cache, lru_cache
from importlib import resources
from typing import Any

import jsonschema
import referencing
import referencing.exceptions
from jsonschema.validators import validator_for
from referencing.jsonschema import DRAFT202012

BAD_JSON = "M_BAD_JSON"


# Schema annotations choosing the errcode of a failure (see `_errcode`).
ERRCODE = "x-errcode"
MISSING_ERRCODE = "x-missing-errcode"


class SchemaError(ValueError):
    """A document that breaks its schema; rendered as 400 with `errcode`
    (M_BAD_JSON unless the schema names another, see `_errcode`)."""

    status = 400

    def __init__(self, schema: str, message: str, path: str, errcode: str = BAD_JSON) -> None:
        super().__init__(f"{schema}: {message} at {path}")
        self.schema = schema
        self.path = path
        self.errcode = errcode


def available(kind: str) -> list[str]:
    """Names of the schemas of one kind ("events", "requests"); those in
    sub-folders are named `folder/name` ("client/createRoom")."""
    found: list[str] = []
    folders: list[tuple[str, Any]] = [("", resources.files(__package__).joinpath(kind))]
    while folders:
        prefix, folder = folders.pop()
        for entry in folder.iterdir():
            if entry.is_dir():
                folders.append((f"{prefix}{entry.name}/", entry))
            elif entry.name.endswith(".json"):
                found.append(prefix + entry.name[: -len(".json")])
    return sorted(found)


def _file(kind: str, name: str) -> Any:
    return resources.files(__package__).joinpath(kind, *f"{name}.json".split("/"))


@cache
def load(kind: str, name: str) -> dict[str, Any]:
    schema: dict[str, Any] = json.loads(_file(kind, name).read_text("utf-8"))
    return schema


@cache
def _validator(kind: str, name: str) -> Any:
    """The compiled validator of one schema, built once. A schema may `$ref`
    another of ours by relative path (`"../../events/pdu.json"`)."""
    schema = load(kind, name)
    cls = validator_for(schema)
    cls.check_schema(schema)
    inlined = _inline_file_refs(schema)
    return cls({**inlined, "$id": f"{BASE_URI}{kind}/{name}.json"}, registry=_REGISTRY)


# Keywords that only annotate: left out of an inlined target, and never a clash.
_ANNOTATIONS = frozenset({"$schema", "$id", "$comment", "title", "description", "examples",
                          ERRCODE, MISSING_ERRCODE})


def _inline_file_refs(node: Any) -> Any:
    """`node` with each `$ref` to another of our files replaced by what it names,
    merged with the `$ref`'s siblings: jsonschema resolves a `$ref` on every
    validation (about 15 µs each), and the stream's requests reuse the REST
    bodies this way on every request. Validation and error paths are the same
    (`_errcode` walks the files as written). Left as a `$ref`: a target with
    `#` refs of its own (they would resolve against the wrong root), or one
    sharing a validating keyword with the siblings."""
    if isinstance(node, list):
        return [_inline_file_refs(item) for item in node]
    if not isinstance(node, dict):
        return node
    ref = node.get("$ref")
    if isinstance(ref, str) and not ref.startswith("#"):
        _, target = _follow_ref({}, ref)
        siblings = {key: value for key, value in node.items() if key != "$ref"}
        if (isinstance(target, dict) and not _has_local_ref(target)
                and not (set(siblings) - _ANNOTATIONS) & set(target)):
            kept = {key: value for key, value in target.items() if key not in _ANNOTATIONS}
            return _inline_file_refs({**kept, **siblings})
    return {key: _inline_file_refs(value) for key, value in node.items()}


def _has_local_ref(node: Any) -> bool:
    if isinstance(node, list):
        return any(_has_local_ref(item) for item in node)
    if not isinstance(node, dict):
        return False
    ref = node.get("$ref")
    return (isinstance(ref, str) and ref.startswith("#")) or any(
        _has_local_ref(value) for value in node.values())


# Our schemas' URIs, only for resolving `$ref`s between them (never fetched).
BASE_URI = "https://schemas.guildhall.invalid/"


def _retrieve(uri: str) -> referencing.Resource[Any]:
    if not uri.startswith(BASE_URI) or not uri.endswith(".json"):
        raise referencing.exceptions.NoSuchResource(ref=uri)
    kind, _, name = uri[len(BASE_URI): -len(".json")].partition("/")
    return DRAFT202012.create_resource(load(kind, name))


_REGISTRY: referencing.Registry[Any] = referencing.Registry(retrieve=_retrieve)


@lru_cache(maxsize=1024)  # asked for each event sent; event types come from clients
def has_schema(kind: str, name: str) -> bool:
    return bool(_file(kind, name).is_file())


def validate(kind: str, name: str, document: Any) -> None:
    """Raise SchemaError unless `document` matches the schema."""
    validator = _validator(kind, name)
    if validator.is_valid(document):  # the fast path: no error objects built
        return
    error = jsonschema.exceptions.best_match(validator.iter_errors(document))
    path = "$" + "".join(f"[{p!r}]" for p in error.absolute_path)
    raise SchemaError(f"{kind}/{name}", error.message, path, _errcode(load(kind, name), error))


def _errcode(schema: dict[str, Any], error: Any) -> str:
    """The errcode for `error`: the `x-errcode` of the innermost schema on its
    path (M_BAD_JSON if none), or for a missing required key the innermost
    `x-missing-errcode`. This keeps the spec's (and our clients') codes where
    the spec names one, e.g. M_MISSING_PARAM for a missing parameter."""
    codes = {ERRCODE: BAD_JSON, MISSING_ERRCODE: BAD_JSON}

    def note(node: Any) -> None:
        if isinstance(node, dict) and isinstance(node.get(ERRCODE), str):
            codes[ERRCODE] = codes[MISSING_ERRCODE] = node[ERRCODE]
        if isinstance(node, dict) and isinstance(node.get(MISSING_ERRCODE), str):
            codes[MISSING_ERRCODE] = node[MISSING_ERRCODE]

    root = node = schema
    note(node)
    for step in error.absolute_schema_path:
        if isinstance(node, dict) and step not in node and "$ref" in node:
            root, node = _follow_ref(root, node["$ref"])
            note(node)
        node = node[step] if isinstance(node, (dict, list)) and _has(node, step) else None
        note(node)
    return codes[MISSING_ERRCODE if error.validator == "required" else ERRCODE]


def _has(node: dict[str, Any] | list[Any], step: Any) -> bool:
    return step in node if isinstance(node, dict) else isinstance(step, int) and step < len(node)


def _follow_ref(root: dict[str, Any], ref: str) -> tuple[dict[str, Any], Any]:
    """(file root, schema) a `$ref` names: an error's schema path goes on
    inside it without naming the `$ref`. The two shapes we use: `#/$defs/x`
    in the same file, and an event schema's root (`../../events/pdu.json`)."""
    target, _, pointer = ref.partition("#")
    if target:
        kind, name = target.replace("../", "").removesuffix(".json").split("/", 1)
        root = load(kind, name)
    node: Any = root
    for part in filter(None, pointer.split("/")):
        node = node.get(part) if isinstance(node, dict) else None
    return root, node


def validate_event_content(event_type: str, content: Any) -> None:
    """Validate an event's content where we have a schema for its type."""
    if event_type == "m.room.message" and is_plain_text_message(content):
        return  # what most sends are: valid without asking jsonschema (~40 µs)
    if has_schema("events", event_type):
        validate("events", event_type, content)


def is_plain_text_message(content: Any) -> bool:
    """True only for m.room.message content its schema accepts: exactly a
    string `msgtype` and `body`, leaving out m.location (which must also have
    a `geo_uri`); the other msgtypes' rules are about keys this has not.
    tests/test_schemas.py checks this against the schema (and pins its text)."""
    return (type(content) is dict and len(content) == 2
            and type(content.get("msgtype")) is str and type(content.get("body")) is str
            and content["msgtype"] != "m.location")


def validate_request(name: str, body: Any) -> None:
    """Validate a request body against `requests/<name>.json`, e.g.
    `validate_request("client/createRoom", body)`; raise SchemaError."""
    validate("requests", name, body)


def validate_frame(frame: Any) -> None:
    """Validate a frame the server sent on the stream against its kind's schema
    (`frames/sync.json`, `frames/error.json` or `frames/reply.json`)."""
    kind = "reply"
    if isinstance(frame, dict) and "type" in frame:
        kind = "sync"
    elif isinstance(frame, dict) and "error" in frame:
        kind = "error"
    validate("frames", kind, frame)
