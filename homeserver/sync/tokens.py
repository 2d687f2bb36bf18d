"""Sync and pagination tokens.

A sync token `s<position>_<to-device>` is a position on the global stream plus
the last to-device message delivered with it (which the next sync acknowledges).
A pagination token `t<depth>_<stream>` is a boundary in a room's topological
order: "after the event at (depth, stream)".
"""

from __future__ import annotations

from dataclasses import dataclass

from federation.protocol.errors import Codes, MatrixError


@dataclass(frozen=True)
class SyncToken:
    position: int
    to_device: int = 0

    def __str__(self) -> str:
        return f"s{self.position}_{self.to_device}"

    @classmethod
    def parse(cls, text: str) -> SyncToken:
        try:
            if not text.startswith("s"):
                raise ValueError
            position, _, to_device = text[1:].partition("_")
            token = cls(int(position), int(to_device or 0))
            if token.position < 0 or token.to_device < 0:
                raise ValueError
            return token
        except ValueError as exc:
            raise MatrixError(400, Codes.INVALID_PARAM, f"Invalid sync token {text!r}") from exc


@dataclass(frozen=True, order=True)
class TopologicalToken:
    depth: int
    stream: int

    def __str__(self) -> str:
        return f"t{self.depth}_{self.stream}"

    @classmethod
    def parse(cls, text: str) -> TopologicalToken:
        try:
            if not text.startswith("t"):
                raise ValueError
            depth, _, stream = text[1:].partition("_")
            return cls(int(depth), int(stream))
        except ValueError as exc:
            raise MatrixError(400, Codes.INVALID_PARAM, f"Invalid pagination token {text!r}") from exc

    @classmethod
    def before(cls, depth: int, stream: int) -> TopologicalToken:
        """The boundary just before the event at (depth, stream)."""
        return cls(depth, stream - 1)
