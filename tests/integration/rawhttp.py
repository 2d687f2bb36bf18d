"""HTTP/1.1 over a plain socket, for requests ordinary clients refuse to send:
raw bytes in the path, no body at all, odd headers, bodies of any size."""

from __future__ import annotations

import json
import socket
from dataclasses import dataclass
from typing import Any


@dataclass
class RawResponse:
    status: int
    headers: dict[str, str]  # lower-cased names
    body: bytes

    def json(self) -> Any:
        try:
            return json.loads(self.body)
        except ValueError:
            return None


def raw_request(base_url: str, method: str, target: str | bytes, body: bytes | None = None,
                headers: dict[str, str | bytes] | None = None, token: str | None = None,
                timeout: float = 30, chunked_body: bytes | None = None) -> RawResponse:
    """One request on a fresh connection; `target` is sent exactly as given.
    `chunked_body` is sent as is after the headers (already chunk-encoded)."""
    host, _, port = base_url.removeprefix("http://").partition(":")
    lines = [method.encode() + b" " + (target if isinstance(target, bytes) else target.encode())
             + b" HTTP/1.1", b"Host: " + f"{host}:{port}".encode(), b"Connection: close"]
    all_headers: dict[str, str | bytes] = dict(headers or {})
    if token is not None:
        all_headers.setdefault("Authorization", f"Bearer {token}")
    if body is not None:
        all_headers.setdefault("Content-Type", "application/json")
        all_headers["Content-Length"] = str(len(body))
    for name, value in all_headers.items():
        lines.append(name.encode() + b": " + (value if isinstance(value, bytes)
                                                 else value.encode()))
    payload = b"\r\n".join(lines) + b"\r\n\r\n" + (body or chunked_body or b"")
    with socket.create_connection((host, int(port)), timeout=timeout) as sock:
        try:
            sock.sendall(payload)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server may answer (and close) before reading everything
        chunks = []
        while True:
            try:
                chunk = sock.recv(65536)
            except ConnectionResetError:
                break
            if not chunk:
                break
            chunks.append(chunk)
    return _parse(b"".join(chunks))


def _parse(data: bytes) -> RawResponse:
    head, _, body = data.partition(b"\r\n\r\n")
    if not head:
        raise ConnectionError("connection closed without a response")
    status_line, *header_lines = head.split(b"\r\n")
    headers = {}
    for line in header_lines:
        name, _, value = line.partition(b":")
        headers[name.decode("latin-1").strip().lower()] = value.decode("latin-1").strip()
    if headers.get("transfer-encoding", "").lower() == "chunked":
        body = _dechunk(body)
    return RawResponse(int(status_line.split()[1]), headers, body)


def _dechunk(data: bytes) -> bytes:
    out = b""
    while data:
        size_line, _, rest = data.partition(b"\r\n")
        size = int(size_line.split(b";")[0], 16)
        if size == 0:
            break
        out += rest[:size]
        data = rest[size + 2:]
    return out
