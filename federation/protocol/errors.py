"""The spec's error codes and the one error type that carries them.

An error is raised deep (status, errcode, message) and rendered to JSON in
exactly one place by the HTTP layer.
"""

from __future__ import annotations

from typing import Any


class Codes:
    """`errcode` values from the Client-Server and Server-Server specs."""

    FORBIDDEN = "M_FORBIDDEN"
    UNKNOWN_TOKEN = "M_UNKNOWN_TOKEN"
    MISSING_TOKEN = "M_MISSING_TOKEN"
    BAD_JSON = "M_BAD_JSON"
    NOT_JSON = "M_NOT_JSON"
    NOT_FOUND = "M_NOT_FOUND"
    LIMIT_EXCEEDED = "M_LIMIT_EXCEEDED"
    UNRECOGNIZED = "M_UNRECOGNIZED"
    UNKNOWN = "M_UNKNOWN"
    UNAUTHORIZED = "M_UNAUTHORIZED"
    USER_IN_USE = "M_USER_IN_USE"
    INVALID_USERNAME = "M_INVALID_USERNAME"
    ROOM_IN_USE = "M_ROOM_IN_USE"
    INVALID_ROOM_STATE = "M_INVALID_ROOM_STATE"
    UNSUPPORTED_ROOM_VERSION = "M_UNSUPPORTED_ROOM_VERSION"
    INCOMPATIBLE_ROOM_VERSION = "M_INCOMPATIBLE_ROOM_VERSION"
    BAD_STATE = "M_BAD_STATE"
    GUEST_ACCESS_FORBIDDEN = "M_GUEST_ACCESS_FORBIDDEN"
    MISSING_PARAM = "M_MISSING_PARAM"
    INVALID_PARAM = "M_INVALID_PARAM"
    TOO_LARGE = "M_TOO_LARGE"
    EXCLUSIVE = "M_EXCLUSIVE"
    BAD_ALIAS = "M_BAD_ALIAS"
    USER_DEACTIVATED = "M_USER_DEACTIVATED"
    THREEPID_DENIED = "M_THREEPID_DENIED"
    UNABLE_TO_AUTHORISE_JOIN = "M_UNABLE_TO_AUTHORISE_JOIN"
    UNABLE_TO_GRANT_JOIN = "M_UNABLE_TO_GRANT_JOIN"


class MatrixError(Exception):
    """An error the spec defines: an HTTP status, an `errcode` and a message."""

    def __init__(self, status: int, errcode: str, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.status = status
        self.errcode = errcode
        self.message = message
        self.extra = extra

    def to_json(self) -> dict[str, Any]:
        return {"errcode": self.errcode, "error": self.message, **self.extra}

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.status}, {self.errcode!r}, {self.message!r})"


class AuthError(MatrixError):
    """An event failed the authorization rules (403 M_FORBIDDEN)."""

    def __init__(self, message: str, rule: str = "") -> None:
        super().__init__(403, Codes.FORBIDDEN, message)
        # The spec rule that failed (e.g. "5.3.2"), so operators can see why.
        self.rule = rule


class InvalidEventError(MatrixError):
    """A PDU or event content that breaks the format rules (400 M_BAD_JSON)."""

    def __init__(self, message: str, errcode: str = Codes.BAD_JSON, status: int = 400) -> None:
        super().__init__(status, errcode, message)


class SignatureError(MatrixError):
    """A missing or invalid signature (401 M_UNAUTHORIZED for requests)."""

    def __init__(self, message: str) -> None:
        super().__init__(401, Codes.UNAUTHORIZED, message)
