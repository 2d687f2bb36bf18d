"""Errors the SDK raises: one type carrying the server's (status, errcode, message)."""

from __future__ import annotations


class MatrixClientError(Exception):
    """A request failed: an error answer from the homeserver, or no answer at all."""

    def __init__(self, message: str, status: int | None = None,
                 errcode: str | None = None, retry_after_ms: int | None = None,
                 body: object = None) -> None:
        super().__init__(message)
        self.body = body
        self.message = message
        self.status = status
        self.errcode = errcode
        self.retry_after_ms = retry_after_ms

    def __str__(self) -> str:
        if self.errcode:
            return f"{self.errcode}: {self.message}"
        return self.message


class DiscoveryError(MatrixClientError):
    """`.well-known/matrix/client` discovery failed (spec: FAIL_PROMPT / FAIL_ERROR)."""


class NoSessionError(MatrixClientError):
    """No stored session and no credentials given."""
