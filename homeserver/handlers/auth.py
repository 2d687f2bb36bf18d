"""Access tokens, passwords and the requester behind each request."""

from __future__ import annotations

import secrets
from collections import OrderedDict
from dataclasses import dataclass

import nacl.exceptions
import nacl.pwhash
from twisted.internet.defer import DeferredSemaphore
from twisted.internet.threads import deferToThread

from federation.protocol.errors import Codes, MatrixError

from ..storage.users import TokenOwner, UserStore, hash_token

# argon2id with libsodium's "interactive" limits: ~50 ms and 64 MiB per hash.
_OPS = nacl.pwhash.argon2id.OPSLIMIT_INTERACTIVE
_MEM = nacl.pwhash.argon2id.MEMLIMIT_INTERACTIVE


# Hashes run on threads, never on the reactor, where each would stall every
# other request for its ~50 ms; two at a time (two cores, 64 MiB each).
_hashing = DeferredSemaphore(2)


async def hash_password(password: str) -> str:
    return await _hashing.run(deferToThread, _hash, password)


async def check_password(password_hash: str | None, password: str) -> bool:
    if not password_hash:
        return False
    return await _hashing.run(deferToThread, _verify, password_hash, password)


def _hash(password: str) -> str:
    return nacl.pwhash.argon2id.str(password.encode("utf-8"), opslimit=_OPS,
                                    memlimit=_MEM).decode("ascii")


def _verify(password_hash: str, password: str) -> bool:
    try:
        return bool(nacl.pwhash.verify(password_hash.encode("ascii"), password.encode("utf-8")))
    except (nacl.exceptions.InvalidkeyError, nacl.exceptions.CryptoError, ValueError):
        return False


def new_access_token() -> str:
    """256 random bits; only a hash of it is stored."""
    return "gh_" + secrets.token_urlsafe(32)


def new_device_id() -> str:
    return secrets.token_hex(5).upper()


@dataclass(frozen=True)
class Requester:
    user_id: str
    device_id: str


class Authenticator:
    """Maps access tokens to requesters, with a bounded cache."""

    def __init__(self, users: UserStore, cache_size: int = 10000) -> None:
        self._users = users
        self._cache: OrderedDict[str, TokenOwner] = OrderedDict()
        self._cache_size = cache_size

    async def requester_for_token(self, token: str | None) -> Requester:
        if not token:
            raise MatrixError(401, Codes.MISSING_TOKEN, "Missing access token")
        key = hash_token(token)
        owner = self._cache.get(key)
        if owner is None:
            owner = await self._users.get_token_owner(token)
            if owner is None:
                raise MatrixError(401, Codes.UNKNOWN_TOKEN, "Unknown access token",
                                  soft_logout=False)
            self._cache[key] = owner
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        return Requester(owner.user_id, owner.device_id)

    def forget_tokens(self, token_hashes: list[str]) -> None:
        for token_hash in token_hashes:
            self._cache.pop(token_hash, None)
