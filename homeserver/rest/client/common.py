"""What every client resource needs: the requester behind a request."""

from __future__ import annotations

from twisted.web.http import Request

from federation.protocol import identifiers
from federation.protocol.errors import Codes, MatrixError

from ...handlers.auth import Authenticator, Requester
from ...handlers.ratelimit import RateLimiter


def access_token(request: Request) -> str | None:
    header = request.getHeader(b"authorization")
    query = request.args.get(b"access_token")
    token = None
    if header is not None:
        scheme, _, value = header.decode("latin-1").partition(" ")
        if scheme.lower() != "bearer" or not value.strip():
            raise MatrixError(401, Codes.MISSING_TOKEN, "Malformed Authorization header")
        token = value.strip()
    if query:
        if token is not None:
            raise MatrixError(400, Codes.MISSING_TOKEN,
                              "Mixing Authorization header and access_token query parameter")
        try:
            token = query[0].decode("utf-8")
        except UnicodeDecodeError as exc:
            raise MatrixError(401, Codes.UNKNOWN_TOKEN, "Unknown access token") from exc
    return token


async def requester(auth: Authenticator, request: Request) -> Requester:
    return await auth.requester_for_token(access_token(request))


async def limited_requester(auth: Authenticator, request: Request,
                            limiter: RateLimiter | None) -> Requester:
    """The requester of a write, after taking one action from their rate limit."""
    who = await requester(auth, request)
    if limiter is not None:
        limiter.check(who.user_id)
    return who


def client_ip(request: Request) -> str:
    peer = request.getClientAddress()
    return getattr(peer, "host", "") or ""


def room_id_param(room_id: str) -> str:
    """A room ID from the path, checked (400 M_INVALID_PARAM)."""
    if not identifiers.is_valid_room_id(room_id):
        raise MatrixError(400, Codes.INVALID_PARAM, "Invalid room ID")
    return room_id


def user_id_param(user_id: str) -> str:
    """A user ID from the path, checked (400 M_INVALID_PARAM)."""
    if not identifiers.is_valid_user_id(user_id):
        raise MatrixError(400, Codes.INVALID_PARAM, "Invalid user ID")
    return user_id
