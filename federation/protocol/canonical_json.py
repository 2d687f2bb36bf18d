"""Canonical JSON, as the spec's appendix and room versions 6+ define it.

Encoding is delegated to `canonicaljson`; this module adds what the spec
enforces on top: integers only, within [-(2**53)+1, 2**53-1], no floats, and
no lone surrogates. Every hash and signature goes through `encode` (or
`encode_unchecked` of what `check_canonical` passed).
"""

from __future__ import annotations

import json
from typing import Any

import canonicaljson

from .errors import Codes, InvalidEventError

MIN_INT = -(2**53) + 1
MAX_INT = 2**53 - 1


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def parse(raw: bytes | str) -> Any:
    """Parse JSON text; raises M_NOT_JSON for anything that isn't JSON."""
    try:
        return json.loads(raw, parse_constant=_reject_constant)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise InvalidEventError(f"Content not JSON: {exc}", Codes.NOT_JSON) from exc


def check_canonical(value: Any, path: str = "") -> None:
    """Raise M_BAD_JSON unless `value` can be encoded as canonical JSON."""
    if not _is_canonical(value):
        _raise_first_problem(value, path)


def _is_canonical(value: Any) -> bool:
    """The check without building a path per value (most of its cost on the
    send path): only a refused value is walked again for the message."""
    stack = [value]
    while stack:
        item = stack.pop()
        kind = type(item)
        if kind is str:
            if not item.isascii() and not _encodes(item):
                return False
        elif kind is dict:
            for key in item:
                if type(key) is not str or (not key.isascii() and not _encodes(key)):
                    return False
            stack.extend(item.values())
        elif kind is list or kind is tuple:
            stack.extend(item)
        elif kind is int:
            if not MIN_INT <= item <= MAX_INT:
                return False
        elif not (kind is bool or item is None):
            return False  # floats, and subclasses: the full walk decides
    return True


def _encodes(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _raise_first_problem(value: Any, path: str = "") -> None:
    stack: list[tuple[Any, str]] = [(value, path or "$")]
    while stack:
        item, where = stack.pop()
        if isinstance(item, bool) or item is None:
            continue
        if isinstance(item, int):
            if not MIN_INT <= item <= MAX_INT:
                raise InvalidEventError(f"integer out of range at {where}")
        elif isinstance(item, float):
            raise InvalidEventError(f"non-integer number at {where}")
        elif isinstance(item, str):
            _check_string(item, where)
        elif isinstance(item, dict):
            for key, sub in item.items():
                if not isinstance(key, str):
                    raise InvalidEventError(f"non-string key at {where}")
                _check_string(key, where)
                stack.append((sub, f"{where}.{key}"))
        elif isinstance(item, (list, tuple)):
            stack.extend((sub, f"{where}[{i}]") for i, sub in enumerate(item))
        else:
            raise InvalidEventError(f"unsupported value of type {type(item).__name__} at {where}")


def _check_string(text: str, where: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InvalidEventError(f"invalid unicode (lone surrogate) at {where}") from exc


def encode(value: Any) -> bytes:
    """Canonical JSON bytes of `value`, after enforcing the spec's value rules."""
    check_canonical(value)
    return canonicaljson.encode_canonical_json(value)


def encode_unchecked(value: Any) -> bytes:
    """Canonical JSON bytes of already-validated data (hot paths only)."""
    return canonicaljson.encode_canonical_json(value)
