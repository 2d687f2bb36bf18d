"""The composition root: builds every store, handler and resource, and wires
them together. Nothing else constructs collaborators."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any


from .clock import Clock
from .config import Config
from .handlers.account import AccountHandler
from .handlers.account_data import AccountDataHandler
from .handlers.auth import Authenticator
from .handlers.devices import DeviceHandler
from .handlers.e2e_keys import E2eKeysHandler
from .handlers.media import MediaHandler
from .handlers.membership import MembershipHandler
from .handlers.presence import PresenceHandler
from .handlers.profiles import ProfileHandler
from .handlers.push import PushActionEvaluator, UnreadNotifications
from .handlers.push_rules import PushRulesHandler
from .handlers.ratelimit import RateLimiters
from .handlers.receipts import ReceiptHandler
from .handlers.room_aliases import RoomAliasHandler
from .handlers.room_creation import RoomCreationHandler
from .handlers.room_directory import RoomDirectoryHandler
from .handlers.room_events import RoomEventHandler
from .handlers.room_reads import RoomReadHandler
from .handlers.to_device import ToDeviceHandler
from .handlers.typing import TypingHandler
from .handlers.ui_auth import PasswordReauth
from .handlers.user_directory import UserDirectoryHandler
from .handlers.hierarchy import SpaceHierarchyHandler
from .handlers.voip import VoipHandler
from .rest.client import account as account_rest
from .rest.client import account_data as account_data_rest
from .rest.client import devices as devices_rest
from .rest.client import directory as directory_rest
from .rest.client import ephemeral as ephemeral_rest
from .rest.client import keys as keys_rest
from .rest.client import media as media_rest
from .rest.client import presence as presence_rest
from .rest.client import push_rules as push_rules_rest
from .rest.client import rooms as rooms_rest
from .rest.client import sync as sync_rest
from .rest.client import to_device as to_device_rest
from .rest.client import voip as voip_rest
from .rest.client import hierarchy as hierarchy_rest
from .rest.http import JsonRouter
from .rest.site import ApiSite, Root, make_site
from .rooms.state_reader import StateReader
from .rooms.visibility import Visibility
from .rooms.writer import PersistedEvent, RoomWriter
from .storage.account_data import AccountDataStore
from .storage.database import Database
from .storage.device_lists import DeviceListStore
from .storage.directory import DirectoryStore
from .storage.e2e_keys import EndToEndKeyStore
from .storage.events import EventStore
from .storage.media import MediaStore
from .storage.migrations import migrate
from .storage.positions import max_state_group, max_stream_position, min_event_position
from .storage.presence import PresenceStore
from .storage.push_actions import PushActionStore
from .storage.push_rules import PushRuleStore
from .storage.receipts import ReceiptStore
from .storage.rooms import RoomStore
from .storage.stream import StreamIdGenerator
from .storage.to_device import ToDeviceStore
from .storage.users import UserStore
from .handlers.sync import SyncHandler
from .sync.change_cache import RecentRoomEvents
from .sync.notifier import Notifier
from .ws.methods import add_ephemeral_methods, add_room_methods
from .ws.requests import RequestDispatcher
from .ws.resource import STREAM_PATH, StreamResource

logger = logging.getLogger(__name__)



@dataclass
class HomeServer:
    config: Config
    db: Database
    site: ApiSite
    clock: Clock
    users: UserStore
    accounts: AccountHandler
    writer: RoomWriter
    notifier: Notifier
    stream: StreamIdGenerator
    # The Server-Server API's site, served over TLS; None without federation.
    federation_site: ApiSite | None = None


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

    stream = StreamIdGenerator(max_stream_position(db))
    state_groups = StreamIdGenerator(max_state_group(db))
    notifier = Notifier(stream, clock)
    push_rules = PushRulesHandler(PushRuleStore(db), account_data, stream, notifier)
    writer = RoomWriter(events, rooms, stream, state_groups, clock, config.signing_key,
                        push=PushActionEvaluator(events, push_rules, server_name),
                        backfill_below=min_event_position(db))
    state = StateReader(events)
    visibility = Visibility(events, state)

    def announce(persisted: PersistedEvent) -> None:
        event = persisted.event
        targets = [event.state_key] if event.type == "m.room.member" and event.state_key else []
        if targets:  # membership moved: device lists and member counts may change
            notifier.changes.mark("members", persisted.stream_ordering,
                                  frozenset([event.room_id]), frozenset(targets))
        notifier.notify(persisted.stream_ordering, rooms=[event.room_id], users=targets,
                        kind="events")

    presence = PresenceHandler(PresenceStore(db), rooms, stream, notifier, clock)
    writer.add_listener(presence.event_persisted)
    presence.start()
    account_data_handler = AccountDataHandler(account_data, stream, notifier)

    auth = Authenticator(users)
    accounts = AccountHandler(users, auth, clock, server_name, config.enable_registration)
    profiles = ProfileHandler(users, rooms, server_name)
    membership = MembershipHandler(writer, rooms, profiles, server_name)
    profiles.membership = membership
    creation = RoomCreationHandler(writer, rooms, membership, profiles, server_name,
                                   config.default_room_version)
    room_events = RoomEventHandler(writer, events, rooms)
    reads = RoomReadHandler(writer, events, rooms, state, visibility, clock)
    typing = TypingHandler(stream, notifier, clock, rooms, presence.bump_active)
    writer.add_listener(typing.event_persisted)
    receipts_handler = ReceiptHandler(receipts, account_data_handler, reads, events, stream,
                                      notifier, clock, presence.bump_active)
    e2e_keys = E2eKeysHandler(EndToEndKeyStore(db), DeviceListStore(db), rooms, stream,
                              notifier, server_name)
    accounts.on_logout.append(e2e_keys.device_removed)
    unread = UnreadNotifications(PushActionStore(db))
    receipts_handler.on_receipt.append(unread.receipt_stored)
    sync = SyncHandler(events=events, rooms=rooms, state=state, account_data=account_data,
                       keys=e2e_keys,
                       receipts=receipts, to_device=to_device, typing=typing,
                       notifier=notifier, clock=clock, visibility=visibility, presence=presence,
                       unread=unread, recent=RecentRoomEvents(stream.current))
    # Caches learn of each event before anyone is woken for it: woken syncs run
    # inside `announce`, so it is the last listener.
    for listener in (state.event_persisted, sync.event_persisted, unread.event_persisted,
                     announce):
        writer.add_listener(listener)

    limits = RateLimiters.build(clock.time, enabled=config.rate_limits_enabled,
                                messages=config.message_rate, login=config.login_rate,
                                registration=config.registration_rate)

    router = JsonRouter()
    account_rest.register(router, auth, accounts, profiles, config.default_room_version,
                          limits)
    rooms_rest.register(router, auth, creation, membership, room_events, reads,
                        limits.messages)
    sync_rest.register(router, auth, sync, account_data, presence=presence)
    ephemeral_rest.register(router, auth, typing, receipts_handler)
    account_data_rest.register(router, auth, account_data_handler)
    presence_rest.register(router, auth, presence)
    to_device_handler = ToDeviceHandler(to_device, users, stream, notifier, server_name)
    to_device_rest.register(router, auth, to_device_handler)
    push_rules_rest.register(router, auth, push_rules)
    directory = DirectoryStore(db)
    room_directory = RoomDirectoryHandler(writer, rooms, directory)
    directory_rest.register(router, auth, RoomAliasHandler(writer, rooms, server_name),
                            room_directory,
                            UserDirectoryHandler(writer, directory), server_name)
    devices_rest.register(router, auth, DeviceHandler(
        users, accounts, PasswordReauth(users, clock, server_name)))
    keys_rest.register(router, auth, e2e_keys)
    hierarchy = SpaceHierarchyHandler(writer)
    hierarchy_rest.register(router, auth, hierarchy)
    voip_rest.register(router, auth, VoipHandler(
        clock, config.turn_uris, config.turn_shared_secret, config.turn_user_lifetime_s))
    media_rest.register(router, auth, MediaHandler(
        MediaStore(db, config.data_dir / "media", reactor), clock, server_name,
        config.max_upload_bytes))
    dispatcher = RequestDispatcher()
    add_room_methods(dispatcher, room_events, limits.messages)
    add_ephemeral_methods(dispatcher, typing, receipts_handler, presence, to_device_handler)

    def make_streams() -> Any:
        from .ws.stream import StreamFactory

        return StreamFactory(auth, sync, dispatcher,
                             lambda user, text: sync_rest.resolve_filter(account_data, user, text),
                             presence=presence)

    streams = StreamResource(make_streams)
    accounts.on_logout.append(streams.revoke)
    root = Root(router, {STREAM_PATH: streams})
    site = make_site(root, config.max_request_body_bytes,
                     tuple(p.encode() for p in media_rest.UPLOAD_PATHS), config.max_upload_bytes)
    federation_site = None
    if config.federation_listen is not None:
        # The Server-Server stack (transport, key ring, pyOpenSSL) is loaded only
        # when served: a server without federation never holds it in memory.
        from .federation_app import FederationParts, build_federation

        federation_site = build_federation(FederationParts(
            config=config, reactor=reactor, db=db, clock=clock, writer=writer, events=events,
            rooms=rooms, users=users, stream=stream, notifier=notifier, state=state,
            membership=membership, profiles=profiles, e2e_keys=e2e_keys, typing=typing,
            receipts=receipts_handler, presence=presence, to_device=to_device_handler, reads=reads,
            room_directory=room_directory, hierarchy=hierarchy))
    return HomeServer(config, db, site, clock, users, accounts, writer, notifier, stream,
                      federation_site)
