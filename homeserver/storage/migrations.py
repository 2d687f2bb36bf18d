"""Versioned schema migrations.

Each migration is a function of a connection, applied in order inside one
transaction with the version bump. Never edit a released migration: add one.
"""

from __future__ import annotations

import logging
from typing import Callable

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from . import schema
from .database import Database

logger = logging.getLogger(__name__)


# The tables each migration creates, frozen by name: a later table added to
# schema.py belongs to a later migration, never to a released one.
V1_TABLES = (
    "access_tokens", "account_data", "client_txns", "current_state", "device_keys",
    "device_list_changes", "devices", "e2e_fallback_keys", "event_push_actions",
    "event_relations", "event_state_groups", "events", "filters", "forward_extremities",
    "one_time_keys", "presence", "push_rules", "receipts", "room_aliases", "room_memberships",
    "rooms", "state_groups", "state_groups_state", "to_device", "users",
)
# Federation: remote signing keys, outgoing queues, received transactions.
V2_TABLES: tuple[str, ...] = (
    "federation_outbox", "federation_sender_position",
    "media",
    "server_keys",
)


def _create_tables(conn: Connection, names: tuple[str, ...]) -> None:
    schema.metadata.create_all(conn, tables=[schema.metadata.tables[n] for n in names])


def _v1_initial(conn: Connection) -> None:
    _create_tables(conn, V1_TABLES)


def _v2_federation(conn: Connection) -> None:
    _create_tables(conn, V2_TABLES)
    # v1 created `events` from the current table definition, which may have the
    # column already.
    columns = {c["name"] for c in sa.inspect(conn).get_columns("events")}
    if "soft_failed" not in columns:
        conn.execute(sa.text(
            "ALTER TABLE events ADD COLUMN soft_failed BOOLEAN NOT NULL DEFAULT FALSE"))


MIGRATIONS: list[tuple[int, Callable[[Connection], None]]] = [
    (1, _v1_initial),
    (2, _v2_federation),
]

LATEST_VERSION = MIGRATIONS[-1][0]


def current_version(conn: Connection) -> int:
    schema.schema_version.create(conn, checkfirst=True)
    version = conn.execute(sa.select(schema.schema_version.c.version)).scalar()
    return int(version) if version is not None else 0


def migrate(database: Database) -> int:
    """Bring the schema up to date; returns the version reached."""

    def apply(conn: Connection) -> int:
        version = current_version(conn)
        if version > LATEST_VERSION:
            raise RuntimeError(
                f"database schema v{version} is newer than this server (v{LATEST_VERSION})"
            )
        for number, step in MIGRATIONS:
            if number > version:
                logger.info("applying schema migration v%d", number)
                step(conn)
                conn.execute(sa.delete(schema.schema_version))
                conn.execute(sa.insert(schema.schema_version).values(version=number))
                version = number
        return version

    return database.run_sync("migrate", apply)
