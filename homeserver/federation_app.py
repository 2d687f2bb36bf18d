"""The federation half of the composition root: builds the Server-Server API
(keys, transport, inbound and outbound federation) from the parts `app.build`
already made, and returns the federation listener's site."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from twisted.web.client import Agent

from federation.key_responses import OldVerifyKey, OwnKeys
from federation.keys import KeyRing, Notary
from federation.history import Backfiller
from federation.membership import FederationMembership
from federation.receiver import Receiver
from federation.remote_queries import RemoteQueries
from federation.sender import FederationSender
from federation.transport.backoff import Backoff
from federation.transport.client import FederationClient
from federation.transport.discovery import ServerResolver, TwistedSrvLookup, WellKnownLookup
from federation.transport.tls import FederationTlsPolicy

from .config import Config
from .rest.federation import keys as keys_rest
from .rest.federation import membership as membership_rest
from .rest.federation import queries as queries_rest
from .rest.federation import reads as reads_rest
from .rest.federation import transaction as transaction_rest
from .rest.federation.transaction import TransactionResource
from .rooms.remote import RoomEventsAdapter
from .rest.federation import version as version_rest
from .rest.federation.auth import FederationAuthenticator
from .rest.http import JsonRouter
from .rest.site import ApiSite, make_site
from .handlers.edu_publisher import EduPublisher
from .handlers.federation_edus import FederationEduHandler
from .handlers.federation_queries import FederationQueryHandler
from .handlers.federation_reads import FederationReadHandler
from .handlers.room_aliases import RoomAliasHandler
from .storage.device_lists import DeviceListStore
from .storage.e2e_keys import EndToEndKeyStore
from .storage.event_graph import EventGraphStore
from .storage.federation_queue import FederationQueueStore
from .storage.server_keys import ServerKeyStore


@dataclass
class FederationTransport:
    """Signing keys, the outgoing client and incoming request authentication."""

    keyring: KeyRing
    client: FederationClient
    authenticator: FederationAuthenticator


def build_transport(config: Config, reactor: Any, db: Any) -> FederationTransport:
    tls = FederationTlsPolicy(config.federation_ca_path, config.federation_verify_certificates)
    resolver = ServerResolver(WellKnownLookup(Agent(reactor, contextFactory=tls), reactor),
                              TwistedSrvLookup(reactor))
    client = FederationClient(reactor, config.signing_key, resolver, tls,
                              Backoff(config.federation_retry_min_s,
                                      config.federation_retry_max_s))
    own = OwnKeys(config.signing_key,
                  {key_id: OldVerifyKey(old.verify_key_base64, old.expired_ts)
                   for key_id, old in config.old_signing_keys.items()},
                  config.key_valid_for_s * 1000)
    notaries = [Notary(n.server_name, n.verify_keys) for n in config.trusted_key_servers]
    keyring = KeyRing(reactor, ServerKeyStore(db), client, own, notaries)
    authenticator = FederationAuthenticator(config.server_name, keyring)
    # A server that just reached us is up: retry what we owe it at once.
    authenticator.on_origin_seen.append(client.destination_is_up)
    return FederationTransport(keyring, client, authenticator)


@dataclass
class FederationParts:
    """What the client half of the server hands the federation half."""

    config: Config
    reactor: Any
    db: Any
    clock: Any
    writer: Any
    events: Any
    rooms: Any
    users: Any
    stream: Any
    notifier: Any
    # Built by `build_federation` unless given (app.py may build it earlier).
    transport: FederationTransport | None = None
    state: Any = None  # rooms.state_reader.StateReader
    membership: Any = None  # handlers.membership.MembershipHandler
    profiles: Any = None  # handlers.profiles.ProfileHandler
    reads: Any = None  # handlers.room_reads.RoomReadHandler
    e2e_keys: Any = None  # handlers.e2e_keys.E2eKeysHandler
    room_directory: Any = None  # handlers.room_directory.RoomDirectoryHandler
    hierarchy: Any = None  # handlers.hierarchy.SpaceHierarchyHandler
    # The sender and EDUs: the handlers whose changes go out and come in as EDUs.
    typing: Any = None  # handlers.typing.TypingHandler
    receipts: Any = None  # handlers.receipts.ReceiptHandler
    presence: Any = None  # handlers.presence.PresenceHandler
    to_device: Any = None  # handlers.to_device.ToDeviceHandler


def build_federation(parts: FederationParts) -> ApiSite:
    router = JsonRouter()
    # Keys, request authentication and the outgoing client.
    if parts.transport is None:
        parts.transport = build_transport(parts.config, parts.reactor, parts.db)
    transport = parts.transport
    version_rest.register(router)
    keys_rest.register(router, transport.keyring)
    # Inbound PDUs (the spec's checks) and the membership handshakes, both sides.
    rooms_port = RoomEventsAdapter(parts.writer, parts.events, parts.rooms, parts.state,
                                   parts.profiles.member_content)
    receiver = Receiver(rooms_port, transport.keyring, transport.client,
                        parts.config.server_name)
    remote_membership = FederationMembership(rooms_port, receiver, transport.client,
                                             parts.config.signing_key, parts.clock)
    parts.membership.remote = remote_membership
    parts.reads.history = Backfiller(rooms_port, receiver, parts.config.server_name)
    authenticate = transport.authenticator.authenticate
    transactions = TransactionResource(receiver, edus=_build_sender(parts, transport.client))
    transaction_rest.register(router, authenticate, transactions)
    membership_rest.register(router, authenticate, remote_membership)
    _register_reads(router, parts, authenticate)
    # Then the sender.
    return make_site(router, parts.config.max_request_body_bytes)


def _build_sender(parts: FederationParts, client: FederationClient) -> FederationEduHandler:
    """The outgoing transaction queue, fed by the room writer and the EDU-raising
    handlers; returns the handler of incoming EDUs."""
    name, queue = parts.config.server_name, FederationQueueStore(parts.db)
    sender = FederationSender(name, client, queue, parts.events, parts.rooms, parts.clock,
                              client.backoff)
    parts.writer.add_listener(
        lambda p: sender.event_persisted(p.event, p.stream_ordering, p.state_before))
    sender.start(parts.stream.current)
    publisher = EduPublisher(name, sender, parts.rooms, queue, parts.clock)
    parts.typing.on_typing.append(publisher.typing_changed)
    parts.receipts.on_public_receipt.append(publisher.public_receipt)
    parts.presence.on_presence.append(publisher.presence_changed)
    parts.to_device.remote_delivery = publisher.send_to_device
    parts.e2e_keys.on_device_change.append(publisher.device_changed)
    return FederationEduHandler(parts.rooms, parts.writer, parts.events, parts.clock,
                                parts.typing, parts.receipts, parts.presence, parts.to_device,
                                parts.e2e_keys)


def _register_reads(router: JsonRouter, parts: FederationParts, authenticate: Any) -> None:
    """Reads of the room DAG and queries about our users, aliases and rooms."""
    name, writer, db = parts.config.server_name, parts.writer, parts.db
    reads = FederationReadHandler(parts.events, EventGraphStore(db), parts.state, writer,
                                  parts.clock, name)
    reads_rest.register(router, authenticate, reads)
    queries = FederationQueryHandler(
        RoomAliasHandler(writer, parts.rooms, name), parts.profiles, parts.users,
        parts.e2e_keys, EndToEndKeyStore(db), DeviceListStore(db), name)
    queries_rest.register(router, authenticate, queries, parts.room_directory, parts.hierarchy)
    # And the other way: our users' questions about other servers' users and rooms.
    remote = RemoteQueries(parts.transport.client)
    for handler in (parts.profiles, parts.e2e_keys, parts.room_directory, parts.hierarchy):
        handler.remote = remote
