"""What every client resource needs: the requester behind a request."""

from __future__ import annotations

from twisted.web.server import Request

from federation.protocol.errors import Codes, MatrixError

from ...handlers.auth import Authenticator, Requester


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


def client_ip(request: Request) -> str:
    peer = request.getClientAddress()
    return getattr(peer, "host", "") or ""
