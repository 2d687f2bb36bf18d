"""Chat subcommands: login, register, logout, whoami, rooms, send, tail, history,
create-room, join, invite, upload, download."""

from __future__ import annotations

import argparse
import asyncio
import mimetypes
import sys
import time
from pathlib import Path
from typing import Any

from client.cli import CliError, add_command, client_options, emit, session_client
from client.sdk.client import MatrixClient
from client.sdk.session import config_dir, delete_session, load_session, save_session

START_TIMEOUT_S = 30.0  # the first sync must succeed this soon, or tail fails


def add_commands(subparsers: Any) -> None:
    login = add_command(subparsers, "login", cmd_login, "log in and store the session")
    login.set_defaults(store=True)
    register = add_command(subparsers, "register", cmd_register,
                           "register an account and store the session")
    register.set_defaults(store=True)
    add_command(subparsers, "logout", cmd_logout, "log out the stored session and forget it")
    add_command(subparsers, "whoami", cmd_whoami, "show who the session belongs to")
    add_command(subparsers, "rooms", cmd_rooms, "list joined rooms")
    send = add_command(subparsers, "send", cmd_send, "send a text message")
    send.add_argument("room", metavar="ROOM", help="room ID or #alias:server")
    send.add_argument("text", metavar="TEXT")
    send.add_argument("--notice", action="store_true", help="send as m.notice")
    tail = add_command(subparsers, "tail", cmd_tail, "print new messages as they arrive")
    tail.add_argument("room", metavar="ROOM", help="room ID or #alias:server")
    tail.add_argument("--count", type=int, metavar="N", help="exit after N messages")
    tail.add_argument("--timeout", type=float, metavar="SECONDS",
                      help="fail if the messages do not arrive in time")
    tail.add_argument("--all-events", action="store_true",
                      help="print every timeline event, not only messages")
    history = add_command(subparsers, "history", cmd_history, "print a room's latest messages")
    history.add_argument("room", metavar="ROOM")
    history.add_argument("--limit", type=int, default=20, metavar="N")
    create = add_command(subparsers, "create-room", cmd_create_room, "create a room")
    create.add_argument("name", metavar="NAME")
    create.add_argument("--alias", metavar="LOCALPART", help="publish #LOCALPART:server")
    create.add_argument("--invite", action="append", default=[], metavar="USER")
    create.add_argument("--public", action="store_true", help="anyone may join")
    join = add_command(subparsers, "join", cmd_join, "join a room")
    join.add_argument("room", metavar="ROOM", help="room ID or #alias:server")
    invite = add_command(subparsers, "invite", cmd_invite, "invite a user to a room")
    invite.add_argument("room", metavar="ROOM")
    invite.add_argument("invitee", metavar="USER")
    upload = add_command(subparsers, "upload", cmd_upload, "upload a file; prints its mxc URI")
    upload.add_argument("path", metavar="FILE")
    upload.add_argument("--room", metavar="ROOM", help="also post it to ROOM as m.file")
    download = add_command(subparsers, "download", cmd_download, "download an mxc:// URI")
    download.add_argument("uri", metavar="MXC")
    download.add_argument("--output", "-o", metavar="FILE", required=True)


# Sessions --------------------------------------------------------------------------------

async def cmd_login(args: argparse.Namespace) -> int:
    user, password = _credentials(args)
    client = await MatrixClient.login(args.homeserver, user, password, device_name="guildhall-cli")
    return await _store(args, client, "logged in")


async def cmd_register(args: argparse.Namespace) -> int:
    user, password = _credentials(args)
    client = await MatrixClient.register(args.homeserver, user, password,
                                         device_name="guildhall-cli")
    return await _store(args, client, "registered")


def _credentials(args: argparse.Namespace) -> tuple[str, str]:
    if not args.user or args.password is None:
        raise CliError("--user and --password are required")
    if not args.homeserver and not args.user.startswith("@"):
        raise CliError("give --homeserver, or a full user ID (@user:server) for discovery")
    return args.user, args.password


async def _store(args: argparse.Namespace, client: MatrixClient, verb: str) -> int:
    try:
        path = save_session(client.session, config_dir(args.config_dir))
    finally:
        await client.close()
    emit(args, f"{verb} as {client.user_id} (device {client.device_id}) on "
               f"{client.homeserver_url}; session in {path}",
         {"user_id": client.user_id, "device_id": client.device_id,
          "homeserver": client.homeserver_url, "session_file": str(path)})
    return 0


async def cmd_logout(args: argparse.Namespace) -> int:
    directory = config_dir(args.config_dir)
    client = MatrixClient.restore(load_session(directory), **client_options(args))
    try:
        await client.logout()
    finally:
        await client.close()
    delete_session(directory)
    emit(args, f"logged out {client.user_id}", {"user_id": client.user_id, "logged_out": True})
    return 0


async def cmd_whoami(args: argparse.Namespace) -> int:
    client = await session_client(args)
    answer = await client.whoami()
    emit(args, f"{answer['user_id']} (device {answer.get('device_id')}) on "
               f"{client.homeserver_url}", {**answer, "homeserver": client.homeserver_url})
    return 0


# Rooms -----------------------------------------------------------------------------------

async def cmd_rooms(args: argparse.Namespace) -> int:
    client = await session_client(args)
    await client.sync_once()
    for room in sorted(client.model.joined_rooms, key=lambda r: r.display_name):
        members = room.joined_members
        emit(args, f"{room.room_id}  {room.display_name}  ({len(members)} members, "
                   f"{room.notification_count} unread)",
             {"room_id": room.room_id, "name": room.name, "alias": room.canonical_alias,
              "members": members, "unread": room.notification_count})
    return 0


async def cmd_create_room(args: argparse.Namespace) -> int:
    client = await session_client(args)
    room_id = await client.create_room(
        name=args.name, alias=args.alias, invite=[_full_user_id(client, u) for u in args.invite],
        preset="public_chat" if args.public else "private_chat")
    emit(args, room_id, {"room_id": room_id})
    return 0


async def cmd_join(args: argparse.Namespace) -> int:
    client = await session_client(args)
    room_id = await client.join(args.room)
    emit(args, room_id, {"room_id": room_id})
    return 0


async def cmd_invite(args: argparse.Namespace) -> int:
    client = await session_client(args)
    room_id = await client.resolve_room(args.room)
    invitee = _full_user_id(client, args.invitee)
    await client.invite(room_id, invitee)
    emit(args, f"invited {invitee} to {room_id}", {"room_id": room_id, "user_id": invitee})
    return 0


def _full_user_id(client: MatrixClient, user: str) -> str:
    """A localpart means a user on our own server."""
    if user.startswith("@") and ":" in user:
        return user
    return f"@{user.lstrip('@')}:{client.user_id.split(':', 1)[1]}"


# Messages --------------------------------------------------------------------------------

async def cmd_send(args: argparse.Namespace) -> int:
    client = await session_client(args)
    room_id = await client.resolve_room(args.room)
    event_id = await client.send_text(room_id, args.text,
                                      msgtype="m.notice" if args.notice else "m.text")
    emit(args, event_id, {"room_id": room_id, "event_id": event_id})
    return 0


async def cmd_tail(args: argparse.Namespace) -> int:
    client = await session_client(args)
    room_id = await client.resolve_room(args.room)
    done = asyncio.Event()
    seen = 0

    def print_event(event_room: str, event: dict[str, Any]) -> None:
        nonlocal seen
        if event_room != room_id or (not args.all_events and
                                     event.get("type") != "m.room.message"):
            return
        emit(args, format_event(event), {"room_id": room_id, **event})
        seen += 1
        if args.count is not None and seen >= args.count:
            done.set()

    client.on_timeline(print_event)
    await client.start(timeout=min(START_TIMEOUT_S, args.timeout or START_TIMEOUT_S))
    room = client.rooms.get(room_id)
    if room is None or room.membership != "join":
        raise CliError(f"{client.user_id} has not joined {room_id}")
    print(f"following {room_id}", file=sys.stderr, flush=True)
    await _wait_until(done, client, args.timeout)
    return 0


async def _wait_until(done: asyncio.Event, client: MatrixClient, timeout: float | None) -> None:
    """Until `done`, the sync loop dies, or the timeout passes."""
    deadline = None if timeout is None else time.monotonic() + timeout
    while not done.is_set():
        if not client.running:
            raise CliError(f"stopped following: {client.stopped_reason}")
        if deadline is not None and time.monotonic() > deadline:
            raise CliError(f"timed out after {timeout} s")
        try:
            await asyncio.wait_for(done.wait(), 0.5)
        except TimeoutError:
            pass


async def cmd_history(args: argparse.Namespace) -> int:
    client = await session_client(args)
    room_id = await client.resolve_room(args.room)
    room = client.model.room(room_id)
    await client.paginate(room_id, args.limit)
    for event in room.timeline[-args.limit:]:
        emit(args, format_event(event), {"room_id": room_id, **event})
    return 0


def format_event(event: dict[str, Any]) -> str:
    stamp = time.strftime("%H:%M:%S", time.localtime(event.get("origin_server_ts", 0) / 1000))
    sender, content = event.get("sender", "?"), event.get("content") or {}
    kind = event.get("type")
    if kind == "m.room.message":
        return f"{stamp} <{sender}> {content.get('body', '')}"
    if kind == "m.room.member":
        return f"{stamp} * {event.get('state_key')} {content.get('membership')} (by {sender})"
    return f"{stamp} * {sender} sent {kind}"


# Media -----------------------------------------------------------------------------------

async def cmd_upload(args: argparse.Namespace) -> int:
    path = Path(args.path)
    data = path.read_bytes()
    content_type = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    client = await session_client(args)
    uri = await client.upload(data, content_type, path.name)
    if args.room:
        room_id = await client.resolve_room(args.room)
        await client.send_event(room_id, "m.room.message", {
            "msgtype": "m.file", "body": path.name, "url": uri,
            "info": {"size": len(data), "mimetype": content_type}})
    emit(args, uri, {"content_uri": uri, "size": len(data), "content_type": content_type})
    return 0


async def cmd_download(args: argparse.Namespace) -> int:
    client = await session_client(args)
    data, content_type = await client.download(args.uri)
    Path(args.output).write_bytes(data)
    emit(args, f"{len(data)} bytes ({content_type}) -> {args.output}",
         {"size": len(data), "content_type": content_type, "path": args.output})
    return 0
