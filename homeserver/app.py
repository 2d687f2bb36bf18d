"""The composition root: builds every store, handler and resource, and wires
them together. Nothing else constructs collaborators."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from twisted.web.server import Site

from .clock import Clock
from .config import Config
from .handlers.account import AccountHandler
from .handlers.auth import Authenticator
from .handlers.membership import MembershipHandler
from .handlers.profiles import ProfileHandler
from .handlers.room_creation import RoomCreationHandler
from .handlers.room_events import RoomEventHandler
from .handlers.room_reads import RoomReadHandler
from .handlers.typing import TypingHandler
from .rest import client as client_rest
from .rest.client import account as account_rest
from .rest.client import rooms as rooms_rest
from .rest.client import sync as sync_rest
from .rest.http import JsonRouter, make_site
from .rooms.state_reader import StateReader
from .rooms.visibility import Visibility
from .rooms.writer import PersistedEvent, RoomWriter
from .storage import schema
from .storage.account_data import AccountDataStore
from .storage.database import Database
from .storage.events import EventStore
from .storage.migrations import migrate
from .storage.receipts import ReceiptStore
from .storage.rooms import RoomStore
from .storage.stream import StreamIdGenerator
from .storage.to_device import ToDeviceStore
from .storage.users import UserStore
from .sync.handler import SyncHandler
from .sync.notifier import Notifier

logger = logging.getLogger(__name__)

_ = client_rest


def _max_stream_position(db: Database) -> int:
    """The highest position any stream has used."""
    columns = [schema.events.c.stream_ordering, schema.account_data.c.stream_id,
               schema.receipts.c.stream_id, schema.presence.c.stream_id,
               schema.to_device.c.stream_id, schema.device_list_changes.c.stream_id]

    def txn(conn: Any) -> int:
        return max(int(conn.execute(sa.select(sa.func.max(c))).scalar() or 0) for c in columns)

    return db.run_sync("max_stream_position", txn)


@dataclass
class HomeServer:
    config: Config
    db: Database
    site: Site
    clock: Clock
    users: UserStore
    accounts: AccountHandler
    writer: RoomWriter
    notifier: Notifier
    stream: StreamIdGenerator


def build(config: Config, reactor: Any) -> HomeServer:
    db = Database(config.database_url)
    migrate(db)
    db.start(reactor)
    clock = Clock(reactor)
    server_name = config.server_name

    users = UserStore(db)
    events = EventStore(db)
    rooms = RoomStore(db)
    account_data = AccountDataStore(db)
    receipts = ReceiptStore(db)
    to_device = ToDeviceStore(db)

    stream = StreamIdGenerator(_max_stream_position(db))
    state_groups = StreamIdGenerator(db.run_sync(
        "max_state_group",
        lambda conn: int(conn.execute(sa.select(sa.func.max(schema.state_groups.c.id))).scalar()
                         or 0)))
    notifier = Notifier(stream)
    writer = RoomWriter(events, rooms, stream, state_groups, clock, config.signing_key)
    state = StateReader(events)
    visibility = Visibility(events, state)

    def announce(persisted: PersistedEvent) -> None:
        event = persisted.event
        targets = [event.state_key] if event.type == "m.room.member" and event.state_key else []
        notifier.notify(persisted.stream_ordering, rooms=[event.room_id], users=targets)

    writer.add_listener(announce)

    auth = Authenticator(users)
    accounts = AccountHandler(users, auth, clock, server_name, config.enable_registration)
    profiles = ProfileHandler(users, rooms, server_name)
    membership = MembershipHandler(writer, rooms, profiles, server_name)
    profiles.membership = membership
    creation = RoomCreationHandler(writer, rooms, membership, profiles, server_name,
                                   config.default_room_version)
    room_events = RoomEventHandler(writer, events, rooms)
    reads = RoomReadHandler(writer, events, rooms, state, visibility, clock)
    typing = TypingHandler(stream, notifier, clock)
    sync = SyncHandler(events=events, rooms=rooms, state=state, account_data=account_data,
                       receipts=receipts, to_device=to_device, typing=typing,
                       notifier=notifier, clock=clock)

    router = JsonRouter()
    account_rest.register(router, auth, accounts, profiles, config.default_room_version)
    rooms_rest.register(router, auth, creation, membership, room_events, reads)
    sync_rest.register(router, auth, sync, account_data)
    site = make_site(router, config.max_request_body_bytes)
    return HomeServer(config, db, site, clock, users, accounts, writer, notifier, stream)
