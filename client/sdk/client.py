"""`MatrixClient`: the asyncio SDK the GUI, the CLI and the call engine build on.

Construct with `await MatrixClient.login(...)`, `await MatrixClient.register(...)`
or `MatrixClient.restore(session)`; `await start()` follows the homeserver in a
background task and keeps `rooms` live; callbacks (sync or async) see each new
timeline event exactly once, in order.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import uuid
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path
from typing import Any

import aiohttp

from client.sdk import media
from client.sdk.discovery import discover_homeserver
from client.sdk.errors import MatrixClientError
from client.sdk.history import fill_gaps, paginate_back
from client.sdk.http import CLIENT_V3, HttpApi, path_segment
from client.sdk.model import ClientModel, Event, RoomState
from client.sdk.session import Session, config_dir, load_session, save_session
from client.sdk.sync_loop import Backoff, SyncLoop

logger = logging.getLogger(__name__)

Callback = Callable[..., Any]
SEND_ATTEMPTS = 8


async def _call(callback: Callback, *args: Any) -> None:
    """Run an application callback; a failing callback must not stop the sync loop."""
    try:
        result = callback(*args)
        if inspect.isawaitable(result):
            await result
    except Exception:
        logger.exception("callback %r failed", callback)


def _is_transient(exc: MatrixClientError) -> bool:
    return exc.status is None or exc.status >= 500 or exc.status == 429


class MatrixClient:
    def __init__(self, session: Session, *, use_stream: bool = True,
                 sync_filter: dict[str, Any] | None = None, long_poll_ms: int = 30_000,
                 max_backoff: float = 30.0, replay_initial: bool = False) -> None:
        self.session = session
        self.http = HttpApi(session.homeserver_url, session.access_token)
        self.model = ClientModel(session.user_id)
        self.replay_initial = replay_initial
        self.sync = SyncLoop(self.http, self._handle_sync_body, use_stream=use_stream,
                             sync_filter=sync_filter, long_poll_ms=long_poll_ms,
                             max_backoff=max_backoff)
        self._timeline_callbacks: list[Callback] = []
        self._to_device_callbacks: list[Callback] = []
        self._invite_callbacks: list[Callback] = []
        self._echo_callbacks: list[Callback] = []
        self._room_callbacks: list[Callback] = []
        self._task: asyncio.Task[None] | None = None
        self.stopped_reason: BaseException | None = None

    # Construction -------------------------------------------------------------------

    @classmethod
    async def login(cls, homeserver_url: str | None, user: str, password: str,
                    device_name: str | None = None, **options: Any) -> MatrixClient:
        base_url = await _resolve_homeserver(homeserver_url, user)
        http = HttpApi(base_url)
        try:
            body: dict[str, Any] = {
                "type": "m.login.password", "password": password,
                "identifier": {"type": "m.id.user", "user": user}}
            if device_name:
                body["initial_device_display_name"] = device_name
            answer = await http.request("POST", f"{CLIENT_V3}/login", body)
        finally:
            await http.close()
        return cls(_session_from(answer, base_url), **options)

    @classmethod
    async def register(cls, homeserver_url: str | None, user: str, password: str,
                       device_name: str | None = None, **options: Any) -> MatrixClient:
        """Register `user` (a localpart or full user ID) with the m.login.dummy stage."""
        base_url = await _resolve_homeserver(homeserver_url, user)
        localpart = user[1:].split(":", 1)[0] if user.startswith("@") else user
        body: dict[str, Any] = {"username": localpart, "password": password}
        if device_name:
            body["initial_device_display_name"] = device_name
        http = HttpApi(base_url)
        try:
            answer = await _register_with_dummy_auth(http, body)
        finally:
            await http.close()
        return cls(_session_from(answer, base_url), **options)

    @classmethod
    def restore(cls, session: Session, **options: Any) -> MatrixClient:
        return cls(session, **options)

    @classmethod
    def restore_saved(cls, directory: str | Path | None = None, **options: Any
                      ) -> MatrixClient:
        """The session stored in the config directory (NoSessionError if none)."""
        return cls(load_session(config_dir(directory)), **options)

    def save_session(self, directory: str | Path | None = None) -> Path:
        """Store this session (0600) where `restore_saved` finds it."""
        return save_session(self.session, config_dir(directory))

    @property
    def user_id(self) -> str:
        return self.session.user_id

    @property
    def device_id(self) -> str:
        return self.session.device_id

    @property
    def homeserver_url(self) -> str:
        return self.session.homeserver_url

    @property
    def access_token(self) -> str:
        return self.session.access_token

    @property
    def rooms(self) -> dict[str, RoomState]:
        return self.model.rooms

    async def request(self, method: str, path: str, body: Any = None,
                      params: dict[str, str] | None = None) -> Any:
        """Any Client-Server request with this session's token (path from /_matrix/...)."""
        return await self.http.request(method, path, body, params)

    async def whoami(self) -> dict[str, Any]:
        return dict(await self.request("GET", f"{CLIENT_V3}/account/whoami"))

    async def logout(self) -> None:
        await self.stop()
        await self.request("POST", f"{CLIENT_V3}/logout", {})

    async def close(self) -> None:
        await self.stop()
        await self.http.close()

    # Following the homeserver ---------------------------------------------------------

    async def start(self, replay_initial: bool | None = None,
                    timeout: float | None = None) -> None:
        """Follow the stream in the background; returns after the first sync is applied.

        With `timeout`, gives up (and stops) when no sync succeeded in that time."""
        if replay_initial is not None:
            self.replay_initial = replay_initial
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name=f"sync {self.user_id}")
        waiter = asyncio.create_task(self.sync.synced.wait())
        done, _ = await asyncio.wait({waiter, self._task}, timeout=timeout,
                                     return_when=asyncio.FIRST_COMPLETED)
        if waiter in done:
            return
        waiter.cancel()
        if self._task in done:
            raise self.stopped_reason or MatrixClientError("the sync loop stopped")
        await self.stop()
        raise MatrixClientError(f"no sync with {self.homeserver_url} within {timeout} s "
                                f"(last error: {self.sync.last_error})")

    async def _run(self) -> None:
        try:
            await self.sync.run()
        except Exception as exc:  # noqa: BLE001 -- reported via `stopped_reason`, `running`
            self.stopped_reason = exc
            logger.warning("stopped following %s: %s", self.homeserver_url, exc)

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None and not task.done():
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                pass

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    async def sync_once(self, timeout_ms: int = 0) -> None:
        """One /sync round without the background loop (scripts, tests)."""
        saved = self.sync.long_poll_ms
        self.sync.long_poll_ms = timeout_ms
        try:
            await self.sync.poll_once()
        finally:
            self.sync.long_poll_ms = saved

    async def _handle_sync_body(self, body: dict[str, Any], initial: bool) -> None:
        if not initial:
            await fill_gaps(self.http, self.model, body)
        update = self.model.apply_sync(body)
        for room_id, txn_id in update.resolved_echoes:
            for callback in self._echo_callbacks:
                await _call(callback, room_id, txn_id, None)
        if initial and not self.replay_initial:
            return
        for room_id, event in update.timeline:
            for callback in self._timeline_callbacks:
                await _call(callback, room_id, event)
        for room_id, invite_state in update.invites:
            for callback in self._invite_callbacks:
                await _call(callback, room_id, invite_state)
        for event in update.to_device:
            for callback in self._to_device_callbacks:
                await _call(callback, event)
        for room_id in sorted(update.changed_rooms):
            for callback in self._room_callbacks:
                await _call(callback, room_id)

    # Callbacks ------------------------------------------------------------------------

    def on_timeline(self, callback: Callable[[str, Event], Any]) -> None:
        """`callback(room_id, event)` for each new timeline event, ours included."""
        self._timeline_callbacks.append(callback)

    def on_to_device(self, callback: Callable[[Event], Any]) -> None:
        self._to_device_callbacks.append(callback)

    def on_invite(self, callback: Callable[[str, list[Event]], Any]) -> None:
        """`callback(room_id, invite_state_events)` when we are invited to a room."""
        self._invite_callbacks.append(callback)

    def on_local_echo(self, callback: Callable[[str, str, Event | None], Any]) -> None:
        """`callback(room_id, txn_id, echo)`: echo added/updated, or None once resolved."""
        self._echo_callbacks.append(callback)

    def on_room_update(self, callback: Callable[[str], Any]) -> None:
        """`callback(room_id)` after a sync changed anything in that room."""
        self._room_callbacks.append(callback)

    # Sending ----------------------------------------------------------------------------

    async def send_event(self, room_id: str, event_type: str, content: dict[str, Any],
                         txn_id: str | None = None) -> str:
        """Send with local echo; transient failures retry under the same txnId."""
        txn_id = txn_id or f"gh{uuid.uuid4().hex}"
        echo = self.model.add_local_echo(room_id, txn_id, event_type, content)
        await self._announce_echo(room_id, txn_id, echo)
        path = (f"{CLIENT_V3}/rooms/{path_segment(room_id)}/send/"
                f"{path_segment(event_type)}/{path_segment(txn_id)}")
        try:
            answer = await self._with_retries(lambda: self.http.request("PUT", path, content))
        except MatrixClientError:
            self.model.mark_echo(room_id, txn_id, "failed")
            await self._announce_echo(room_id, txn_id, echo)
            raise
        event_id = str(answer["event_id"])
        room = self.model.room(room_id)
        if txn_id not in room.pending:
            return event_id
        if room.has_event(event_id):  # a retry of an event the sync already brought
            del room.pending[txn_id]
            await self._announce_echo(room_id, txn_id, None)
        else:
            self.model.mark_echo(room_id, txn_id, "sent", event_id)
            await self._announce_echo(room_id, txn_id, echo)
        return event_id

    async def send_text(self, room_id: str, body: str, msgtype: str = "m.text") -> str:
        return await self.send_event(room_id, "m.room.message", {"msgtype": msgtype, "body": body})

    async def send_state(self, room_id: str, event_type: str, content: dict[str, Any],
                         state_key: str = "") -> str:
        path = (f"{CLIENT_V3}/rooms/{path_segment(room_id)}/state/"
                f"{path_segment(event_type)}/{path_segment(state_key)}")
        answer = await self._with_retries(lambda: self.http.request("PUT", path, content))
        return str(answer["event_id"])

    async def _with_retries(self, attempt: Callable[[], Awaitable[Any]]) -> Any:
        backoff = Backoff(initial=0.5, maximum=8.0)
        for _ in range(SEND_ATTEMPTS - 1):
            try:
                return await attempt()
            except MatrixClientError as exc:
                if not _is_transient(exc):
                    raise
                logger.info("retrying after %s", exc)
            await asyncio.sleep(backoff.next_delay())
        return await attempt()

    async def _announce_echo(self, room_id: str, txn_id: str, echo: Event | None) -> None:
        for callback in self._echo_callbacks:
            await _call(callback, room_id, txn_id, echo)

    async def send_typing(self, room_id: str, typing: bool, timeout_ms: int = 30_000) -> None:
        body: dict[str, Any] = {"typing": typing}
        if typing:
            body["timeout"] = timeout_ms
        await self.request("PUT", f"{CLIENT_V3}/rooms/{path_segment(room_id)}/typing/"
                                  f"{path_segment(self.user_id)}", body)

    async def send_receipt(self, room_id: str, event_id: str) -> None:
        await self.request("POST", f"{CLIENT_V3}/rooms/{path_segment(room_id)}/receipt/m.read/"
                                   f"{path_segment(event_id)}", {})

    async def set_presence(self, presence: str, status_msg: str | None = None) -> None:
        body: dict[str, Any] = {"presence": presence}
        if status_msg is not None:
            body["status_msg"] = status_msg
        await self.request("PUT", f"{CLIENT_V3}/presence/{path_segment(self.user_id)}/status",
                           body)

    async def send_to_device(self, event_type: str,
                             messages: dict[str, dict[str, dict[str, Any]]],
                             txn_id: str | None = None) -> None:
        txn_id = txn_id or f"gh{uuid.uuid4().hex}"
        path = f"{CLIENT_V3}/sendToDevice/{path_segment(event_type)}/{path_segment(txn_id)}"
        await self._with_retries(lambda: self.http.request("PUT", path, {"messages": messages}))

    # Rooms ------------------------------------------------------------------------------

    async def create_room(self, name: str | None = None, invite: Iterable[str] = (),
                          is_direct: bool = False, preset: str | None = None,
                          alias: str | None = None, topic: str | None = None,
                          extra: dict[str, Any] | None = None) -> str:
        body: dict[str, Any] = {"invite": list(invite), "is_direct": is_direct}
        body["preset"] = preset or ("trusted_private_chat" if is_direct else "private_chat")
        for key, value in (("name", name), ("room_alias_name", alias), ("topic", topic)):
            if value is not None:
                body[key] = value
        body.update(extra or {})
        answer = await self.request("POST", f"{CLIENT_V3}/createRoom", body)
        room_id = str(answer["room_id"])
        self.model.room(room_id).membership = "join"
        return room_id

    async def resolve_room(self, room_id_or_alias: str) -> str:
        """A room ID for a room ID or `#alias:server`."""
        if not room_id_or_alias.startswith("#"):
            return room_id_or_alias
        answer = await self.request(
            "GET", f"{CLIENT_V3}/directory/room/{path_segment(room_id_or_alias)}")
        return str(answer["room_id"])

    async def join(self, room_id_or_alias: str) -> str:
        answer = await self.request("POST", f"{CLIENT_V3}/join/{path_segment(room_id_or_alias)}",
                                    {})
        room_id = str(answer["room_id"])
        self.model.room(room_id).membership = "join"
        return room_id

    async def leave(self, room_id: str) -> None:
        await self.request("POST", f"{CLIENT_V3}/rooms/{path_segment(room_id)}/leave", {})

    async def invite(self, room_id: str, user_id: str) -> None:
        await self.request("POST", f"{CLIENT_V3}/rooms/{path_segment(room_id)}/invite",
                           {"user_id": user_id})

    async def joined_rooms(self) -> list[str]:
        answer = await self.request("GET", f"{CLIENT_V3}/joined_rooms")
        return [str(room_id) for room_id in answer.get("joined_rooms", [])]

    async def room_state(self, room_id: str) -> list[Event]:
        return list(await self.request("GET",
                                       f"{CLIENT_V3}/rooms/{path_segment(room_id)}/state"))

    async def direct_room_with(self, user_id: str, create: bool = True) -> str | None:
        """Our direct room with `user_id` from m.direct account data, else a new one."""
        direct = await self._account_data("m.direct")
        for room_id in direct.get(user_id, []) or []:
            if room_id in self.rooms and self.rooms[room_id].membership == "join":
                return str(room_id)
            if room_id not in self.rooms and room_id in await self.joined_rooms():
                return str(room_id)
        if not create:
            return None
        room_id = await self.create_room(invite=[user_id], is_direct=True)
        direct.setdefault(user_id, []).append(room_id)
        await self.request("PUT", f"{CLIENT_V3}/user/{path_segment(self.user_id)}/"
                                  "account_data/m.direct", direct)
        self.model.account_data["m.direct"] = direct
        return room_id

    async def _account_data(self, event_type: str) -> dict[str, Any]:
        try:
            return dict(await self.request(
                "GET", f"{CLIENT_V3}/user/{path_segment(self.user_id)}/account_data/"
                       f"{path_segment(event_type)}"))
        except MatrixClientError as exc:
            if exc.errcode == "M_NOT_FOUND":
                return {}
            raise

    async def turn_server(self) -> dict[str, Any]:
        """`/voip/turnServer`, or `{}` when the homeserver offers none."""
        try:
            answer = await self.request("GET", f"{CLIENT_V3}/voip/turnServer")
        except MatrixClientError as exc:
            if exc.status == 404 or exc.errcode == "M_NOT_FOUND":
                return {}
            raise
        return dict(answer) if isinstance(answer, dict) and answer.get("uris") else {}

    # History and media ------------------------------------------------------------------

    async def paginate(self, room_id: str, limit: int = 50) -> list[Event]:
        """Load up to `limit` older events into the room; returns them oldest first."""
        return await paginate_back(self.http, self.model.room(room_id), limit)

    async def upload(self, data: bytes, content_type: str = "application/octet-stream",
                     filename: str | None = None) -> str:
        """Upload media; returns its `mxc://server/id` URI."""
        return await media.upload(self.http, data, content_type, filename)

    async def download(self, mxc_uri: str) -> tuple[bytes, str]:
        """(bytes, content type) of `mxc://server/id` via the authenticated endpoint."""
        return await media.download(self.http, mxc_uri)


async def _resolve_homeserver(homeserver_url: str | None, user: str) -> str:
    if homeserver_url:
        return homeserver_url.rstrip("/")
    async with aiohttp.ClientSession() as session:
        return await discover_homeserver(user, session)


def _session_from(answer: dict[str, Any], base_url: str) -> Session:
    well_known = ((answer.get("well_known") or {}).get("m.homeserver") or {}).get("base_url")
    return Session(user_id=str(answer["user_id"]), device_id=str(answer["device_id"]),
                   access_token=str(answer["access_token"]),
                   homeserver_url=(well_known or base_url).rstrip("/"))


async def _register_with_dummy_auth(http: HttpApi, body: dict[str, Any]) -> dict[str, Any]:
    """POST /register; answer the UIA challenge with m.login.dummy (spec: UIA step 2)."""
    try:
        return dict(await http.request("POST", f"{CLIENT_V3}/register", body))
    except MatrixClientError as exc:
        challenge = exc.body if isinstance(exc.body, dict) else None
        if exc.status != 401 or not challenge or "flows" not in challenge:
            raise
        auth = {"type": "m.login.dummy", "session": challenge.get("session")}
        return dict(await http.request("POST", f"{CLIENT_V3}/register", {**body, "auth": auth}))
