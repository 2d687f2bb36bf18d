"""Sync and pagination tokens.

A sync token `s<position>_<to-device>` is a position on the global stream plus
the last to-device message delivered with it (which the next sync acknowledges).
A pagination token `t<depth>_<stream>` is a boundary in a room's topological
order: "after the event at (depth, stream)".
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from federation.protocol.errors import Codes, MatrixError

# ASCII digits only (int() also takes '²', '+1', ' 1', '1_0'), and at most 18 of
# them so that every position fits the databases' signed 64-bit integers.
_SYNC = re.compile(r"s([0-9]{1,18})(?:_([0-9]{1,18}))?", re.ASCII)
_TOPOLOGICAL = re.compile(r"t(-?[0-9]{1,18})_(-?[0-9]{1,18})", re.ASCII)


@dataclass(frozen=True)
class SyncToken:
    position: int
    to_device: int = 0

    def __str__(self) -> str:
        return f"s{self.position}_{self.to_device}"

    @classmethod
    def parse(cls, text: str) -> SyncToken:
        match = _SYNC.fullmatch(text)
        if match is None:
            raise MatrixError(400, Codes.INVALID_PARAM, f"Invalid sync token {text[:100]!r}")
        return cls(int(match.group(1)), int(match.group(2) or 0))


@dataclass(frozen=True, order=True)
class TopologicalToken:
    depth: int
    stream: int

    def __str__(self) -> str:
        return f"t{self.depth}_{self.stream}"

    @classmethod
    def parse(cls, text: str) -> TopologicalToken:
        match = _TOPOLOGICAL.fullmatch(text)
        if match is None:
            raise MatrixError(400, Codes.INVALID_PARAM,
                              f"Invalid pagination token {text[:100]!r}")
        return cls(int(match.group(1)), int(match.group(2)))

    @classmethod
    def before(cls, depth: int, stream: int) -> TopologicalToken:
        """The boundary just before the event at (depth, stream)."""
        return cls(depth, stream - 1)
