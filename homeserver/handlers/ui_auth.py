"""User-interactive authentication for sensitive operations of a logged-in user
(spec: client-server API, "User-Interactive Authentication API").

One flow with one stage, `m.login.password`, as Synapse requires for deleting
devices: the client proves again that it knows the account's password.
"""

from __future__ import annotations

import logging
import secrets
from collections import OrderedDict
from typing import Any

from federation.protocol.errors import Codes, MatrixError

from ..clock import Clock
from ..storage.users import UserStore
from .account import UIA_SESSION_TTL_MS, UIAChallenge
from .auth import check_password

logger = logging.getLogger(__name__)

PASSWORD = "m.login.password"
FLOWS = [{"stages": [PASSWORD]}]
MAX_SESSIONS = 10000


class PasswordReauth:
    def __init__(self, users: UserStore, clock: Clock, server_name: str) -> None:
        self._users = users
        self._clock = clock
        self._server_name = server_name
        # session -> (user it was issued to, creation time); bounded and expiring.
        self._sessions: OrderedDict[str, tuple[str, int]] = OrderedDict()

    def _new_session(self, user_id: str) -> str:
        now = self._clock.time_ms()
        while self._sessions:
            oldest, (_, created) = next(iter(self._sessions.items()))
            if now - created < UIA_SESSION_TTL_MS and len(self._sessions) < MAX_SESSIONS:
                break
            del self._sessions[oldest]
        session = secrets.token_urlsafe(16)
        self._sessions[session] = (user_id, now)
        return session

    def _state(self, session: str) -> dict[str, Any]:
        return {"flows": FLOWS, "params": {}, "session": session, "completed": []}

    async def authenticate(self, user_id: str, auth: Any) -> None:
        """Return when `auth` completes the flow for `user_id`; raise otherwise:
        401 with the flows (spec: step 1 of the UIA exchange) or a failed stage."""
        if not isinstance(auth, dict):
            state = self._state(self._new_session(user_id))
            del state["completed"]
            raise UIAChallenge(401, Codes.FORBIDDEN, "Additional authentication required",
                               **state)
        session = auth.get("session")
        if session is None:
            session = self._new_session(user_id)  # auth in one go, without a round trip
        elif not isinstance(session, str) or session not in self._sessions:
            raise MatrixError(400, Codes.UNKNOWN, "Unknown session ID")
        elif self._sessions[session][0] != user_id:
            raise MatrixError(403, Codes.FORBIDDEN, "Session belongs to another user")
        if auth.get("type") != PASSWORD:
            raise MatrixError(401, Codes.FORBIDDEN, "Unsupported authentication type",
                              **self._state(session))
        if self._identified_user(auth) != user_id:
            # Synapse: re-authenticating as someone else is "Invalid auth".
            raise MatrixError(403, Codes.FORBIDDEN, "Invalid auth")
        if not await self._password_ok(user_id, auth.get("password")):
            raise MatrixError(401, Codes.FORBIDDEN, "Invalid password", **self._state(session))
        self._sessions.pop(session, None)

    def _identified_user(self, auth: dict[str, Any]) -> str | None:
        identifier = auth.get("identifier")
        if isinstance(identifier, dict):
            if identifier.get("type") != "m.id.user":
                return None
            user = identifier.get("user")
        else:
            user = auth.get("user")  # the pre-r0.4 form, still sent by matrix-nio
        if not isinstance(user, str) or not user:
            return None
        return user if user.startswith("@") else f"@{user.lower()}:{self._server_name}"

    async def _password_ok(self, user_id: str, password: Any) -> bool:
        if not isinstance(password, str):
            return False
        account = await self._users.get_account(user_id)
        return account is not None and not account.deactivated and \
            await check_password(account.password_hash, password)
