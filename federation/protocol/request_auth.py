"""X-Matrix request authentication between servers.

The signed object is `{method, uri, origin, destination, content?}`; the
signature travels in `Authorization: X-Matrix origin=...,destination=...,key=...,sig=...`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

from signedjson.sign import sign_json

from .errors import SignatureError
from .signing import ServerKey, VerifyKey, verify_json


@dataclass(frozen=True)
class XMatrixAuth:
    origin: str
    destination: str | None
    key_id: str
    signature: str


def request_json(
    method: str, uri: str, origin: str, destination: str, content: Any = None
) -> dict[str, Any]:
    obj: dict[str, Any] = {
        "method": method.upper(), "uri": uri, "origin": origin, "destination": destination,
    }
    if content is not None:
        obj["content"] = content
    return obj


def sign_request(
    key: ServerKey, method: str, uri: str, destination: str, content: Any = None
) -> str:
    """The `Authorization` header value for an outgoing federation request."""
    obj = request_json(method, uri, key.server_name, destination, content)
    signed = sign_json(obj, key.server_name, key.signing_key)
    sig = signed["signatures"][key.server_name][key.key_id]
    return (
        f'X-Matrix origin="{key.server_name}",destination="{destination}",'
        f'key="{key.key_id}",sig="{sig}"'
    )


def parse_authorization(header: str) -> XMatrixAuth:
    """Parse an X-Matrix header: names in any case and order, values quoted or bare."""
    scheme, _, params_text = header.strip().partition(" ")
    if scheme.lower() != "x-matrix":
        raise SignatureError("not an X-Matrix Authorization header")
    params = _parse_params(params_text)
    try:
        return XMatrixAuth(
            origin=params["origin"],
            destination=params.get("destination"),
            key_id=params["key"],
            signature=params["sig"],
        )
    except KeyError as exc:
        raise SignatureError(f"X-Matrix header lacks {exc.args[0]}") from exc


def _parse_params(text: str) -> dict[str, str]:
    params: dict[str, str] = {}
    i, n = 0, len(text)
    while i < n:
        while i < n and text[i] in " \t,":  # spaces and tabs may surround commas
            i += 1
        eq = text.find("=", i)
        if eq < 0:
            break
        name = text[i:eq].strip().lower()
        i = eq + 1
        if i < n and text[i] == '"':
            value, i = _read_quoted(text, i + 1)
        else:
            end = text.find(",", i)
            end = n if end < 0 else end
            value, i = text[i:end].strip(), end
        params.setdefault(name, value)
    return params


def _read_quoted(text: str, i: int) -> tuple[str, int]:
    out: list[str] = []
    while i < len(text):
        ch = text[i]
        if ch == "\\" and i + 1 < len(text):
            out.append(text[i + 1])
            i += 2
            continue
        if ch == '"':
            return "".join(out), i + 1
        out.append(ch)
        i += 1
    raise SignatureError("unterminated quoted value in X-Matrix header")


def verify_request(
    auth: XMatrixAuth,
    method: str,
    uri: str,
    our_server_name: str,
    content: Any,
    verify_key: VerifyKey,
) -> None:
    """Check an incoming request's X-Matrix signature; raise SignatureError if bad."""
    if auth.destination is not None and auth.destination != our_server_name:
        raise SignatureError("request is for another destination")
    obj: Mapping[str, Any] = {
        **request_json(method, uri, auth.origin, our_server_name, content),
        "signatures": {auth.origin: {auth.key_id: auth.signature}},
    }
    verify_json(obj, auth.origin, verify_key)
