"""Content of the Matrix VoIP events (`m.call.*`, version "1"): building and reading.

Pure: no I/O. Spec: Client-Server API, "Voice over IP" (events, streams, glare).
"""

from __future__ import annotations

import secrets
import string
from typing import Any

INVITE = "m.call.invite"
ANSWER = "m.call.answer"
CANDIDATES = "m.call.candidates"
SELECT_ANSWER = "m.call.select_answer"
NEGOTIATE = "m.call.negotiate"
REJECT = "m.call.reject"
HANGUP = "m.call.hangup"
METADATA_CHANGED = "m.call.sdp_stream_metadata_changed"
CALL_EVENT_TYPES = frozenset({INVITE, ANSWER, CANDIDATES, SELECT_ANSWER, NEGOTIATE, REJECT,
                              HANGUP, METADATA_CHANGED})

VERSION = "1"
DEFAULT_LIFETIME_MS = 90_000  # the spec recommends at least 90 s

USERMEDIA = "m.usermedia"
SCREENSHARE = "m.screenshare"

# Hangup reasons the spec defines; a missing reason means user_hangup.
ICE_TIMEOUT = "ice_timeout"
ICE_FAILED = "ice_failed"
INVITE_TIMEOUT = "invite_timeout"
USER_HANGUP = "user_hangup"
USER_MEDIA_FAILED = "user_media_failed"
USER_BUSY = "user_busy"
UNKNOWN_ERROR = "unknown_error"
HANGUP_REASONS = frozenset({ICE_TIMEOUT, ICE_FAILED, INVITE_TIMEOUT, USER_HANGUP,
                            USER_MEDIA_FAILED, USER_BUSY, UNKNOWN_ERROR})

_ALPHANUMERIC = string.ascii_letters + string.digits


def new_call_id() -> str:
    return "".join(secrets.choice(_ALPHANUMERIC) for _ in range(16))


def new_party_id() -> str:
    """One per client per call; the spec suggests about 8 alphanumerics."""
    return "".join(secrets.choice(_ALPHANUMERIC) for _ in range(8))


def is_supported_version(content: dict[str, Any]) -> bool:
    """Any version other than 0 (even the integer 1) is treated as "1"."""
    return content.get("version", 0) not in (0, "0")


def _base(call_id: str, party_id: str) -> dict[str, Any]:
    return {"call_id": call_id, "party_id": party_id, "version": VERSION}


def stream_metadata(stream_ids: dict[str, str], audio_muted: bool = False,
                    video_muted: bool = False) -> dict[str, dict[str, Any]]:
    """`{stream_id: purpose}` -> the `sdp_stream_metadata` map."""
    return {stream_id: {"purpose": purpose, "audio_muted": audio_muted,
                        "video_muted": video_muted}
            for stream_id, purpose in stream_ids.items()}


def invite(call_id: str, party_id: str, sdp: str, lifetime_ms: int,
           metadata: dict[str, Any] | None = None, invitee: str | None = None) -> dict[str, Any]:
    content = _base(call_id, party_id)
    content.update(offer={"type": "offer", "sdp": sdp}, lifetime=lifetime_ms)
    if invitee is not None:
        content["invitee"] = invitee
    if metadata:
        content["sdp_stream_metadata"] = metadata
    return content


def answer(call_id: str, party_id: str, sdp: str,
           metadata: dict[str, Any] | None = None) -> dict[str, Any]:
    content = _base(call_id, party_id)
    content["answer"] = {"type": "answer", "sdp": sdp}
    if metadata:
        content["sdp_stream_metadata"] = metadata
    return content


def candidates(call_id: str, party_id: str, batch: list[dict[str, Any]]) -> dict[str, Any]:
    content = _base(call_id, party_id)
    content["candidates"] = batch
    return content


def select_answer(call_id: str, party_id: str, selected_party_id: str) -> dict[str, Any]:
    content = _base(call_id, party_id)
    content["selected_party_id"] = selected_party_id
    return content


def negotiate(call_id: str, party_id: str, description_type: str, sdp: str, lifetime_ms: int,
              metadata: dict[str, Any] | None = None) -> dict[str, Any]:
    content = _base(call_id, party_id)
    content.update(description={"type": description_type, "sdp": sdp}, lifetime=lifetime_ms)
    if metadata:
        content["sdp_stream_metadata"] = metadata
    return content


def reject(call_id: str, party_id: str) -> dict[str, Any]:
    return _base(call_id, party_id)


def hangup(call_id: str, party_id: str, reason: str = USER_HANGUP) -> dict[str, Any]:
    content = _base(call_id, party_id)
    content["reason"] = reason
    return content


def metadata_changed(call_id: str, party_id: str, metadata: dict[str, Any]) -> dict[str, Any]:
    content = _base(call_id, party_id)
    content["sdp_stream_metadata"] = metadata
    return content


def hangup_reason(content: dict[str, Any]) -> str:
    """The reason of a received hangup; missing or unknown reasons read as the spec says."""
    reason = content.get("reason")
    if reason is None:
        return USER_HANGUP
    return reason if reason in HANGUP_REASONS else UNKNOWN_ERROR


def description_of(content: dict[str, Any], key: str) -> tuple[str, str] | None:
    """(type, sdp) of `offer`/`answer`/`description`, or None when malformed."""
    description = content.get(key)
    if not isinstance(description, dict):
        return None
    kind, sdp = description.get("type"), description.get("sdp")
    if not isinstance(kind, str) or not isinstance(sdp, str):
        return None
    return kind, sdp
