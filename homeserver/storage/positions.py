"""Where the global stream and the state-group counter stand at startup."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from . import schema
from .database import Database

# Every table whose rows take a position on the global stream.
_STREAM_COLUMNS = (
    schema.events.c.stream_ordering, schema.account_data.c.stream_id,
    schema.receipts.c.stream_id, schema.presence.c.stream_id,
    schema.to_device.c.stream_id, schema.device_list_changes.c.stream_id,
)


def max_stream_position(db: Database) -> int:
    """The highest position any stream has used (run before the reactor starts)."""

    def txn(conn: Connection) -> int:
        return max(int(conn.execute(sa.select(sa.func.max(c))).scalar() or 0)
                   for c in _STREAM_COLUMNS)

    return db.run_sync("max_stream_position", txn)


def max_state_group(db: Database) -> int:
    def txn(conn: Connection) -> int:
        return int(conn.execute(sa.select(sa.func.max(schema.state_groups.c.id))).scalar() or 0)

    return db.run_sync("max_state_group", txn)


def min_event_position(db: Database) -> int:
    """The lowest event position: backfilled history goes below it."""

    def txn(conn: Connection) -> int:
        return int(conn.execute(sa.select(sa.func.min(schema.events.c.stream_ordering))).scalar()
                   or 0)

    return db.run_sync("min_event_position", txn)
