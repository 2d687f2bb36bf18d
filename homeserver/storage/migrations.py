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


def _v1_initial(conn: Connection) -> None:
    tables = [t for t in schema.metadata.sorted_tables if t.name != "schema_version"]
    schema.metadata.create_all(conn, tables=tables)


MIGRATIONS: list[tuple[int, Callable[[Connection], None]]] = [
    (1, _v1_initial),
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
