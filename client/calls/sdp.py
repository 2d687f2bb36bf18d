"""SDP text helpers, pure: move ICE candidates between the SDP and `m.call.candidates`,
and read each media section's mid and stream ID."""

from __future__ import annotations

from typing import Any

END_OF_CANDIDATES: dict[str, Any] = {"candidate": ""}


def _lines(sdp: str) -> list[str]:
    return [line for line in sdp.replace("\r\n", "\n").split("\n") if line]


def split_candidates(sdp: str) -> tuple[str, list[dict[str, Any]]]:
    """The SDP without candidate lines, and the candidates as the spec's batch entries.

    aiortc gathers every candidate before the description is ready, so the caller sends
    them in one batch, ended by the end-of-candidates marker."""
    mids = _mids(sdp)
    kept: list[str] = []
    batch: list[dict[str, Any]] = []
    index = -1
    for line in _lines(sdp):
        if line.startswith("m="):
            index += 1
        if line.startswith("a=candidate:"):
            batch.append({"candidate": line[2:], "sdpMid": mids.get(index),
                          "sdpMLineIndex": index})
        elif line != "a=end-of-candidates":
            kept.append(line)
    return "\r\n".join(kept) + "\r\n", batch


def _mids(sdp: str) -> dict[int, str]:
    found: dict[int, str] = {}
    index = -1
    for line in _lines(sdp):
        if line.startswith("m="):
            index += 1
        elif line.startswith("a=mid:"):
            found[index] = line[len("a=mid:"):]
    return found


def candidate_types(batch: list[dict[str, Any]]) -> set[str]:
    """The `typ` of each candidate (host, srflx, relay)."""
    types = set()
    for entry in batch:
        bits = str(entry.get("candidate", "")).split()
        if "typ" in bits and bits.index("typ") + 1 < len(bits):
            types.add(bits[bits.index("typ") + 1])
    return types


def stream_ids_by_mid(sdp: str) -> dict[str, str]:
    """`a=msid:<stream> <track>` of each media section, keyed by its mid."""
    found: dict[str, str] = {}
    mid, stream = None, None
    for line in _lines(sdp) + ["m=end"]:
        if line.startswith("m="):
            if mid is not None and stream is not None:
                found[mid] = stream
            mid, stream = None, None
        elif line.startswith("a=mid:"):
            mid = line[len("a=mid:"):]
        elif line.startswith("a=msid:"):
            stream = line[len("a=msid:"):].split()[0]
    return found
