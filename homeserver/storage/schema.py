"""The tables: one schema for SQLite and PostgreSQL.

Every row of a stream (events, receipts, account data, to-device messages,
presence, device-list changes) carries a position from one global stream
counter, so one integer tells /sync what a client has seen.
"""

from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData()

Text = sa.Text
BigInt = sa.BigInteger

schema_version = sa.Table(
    "schema_version", metadata,
    sa.Column("version", sa.Integer, nullable=False),
)

users = sa.Table(
    "users", metadata,
    sa.Column("user_id", Text, primary_key=True),
    sa.Column("password_hash", Text),
    sa.Column("is_admin", sa.Boolean, nullable=False, default=False),
    sa.Column("deactivated", sa.Boolean, nullable=False, default=False),
    sa.Column("created_ts", BigInt, nullable=False),
    sa.Column("displayname", Text),
    sa.Column("avatar_url", Text),
)

devices = sa.Table(
    "devices", metadata,
    sa.Column("user_id", Text, primary_key=True),
    sa.Column("device_id", Text, primary_key=True),
    sa.Column("display_name", Text),
    sa.Column("last_seen_ts", BigInt),
    sa.Column("last_seen_ip", Text),
)

access_tokens = sa.Table(
    "access_tokens", metadata,
    # SHA-256 of the token: a stolen database yields no usable tokens.
    sa.Column("token_hash", Text, primary_key=True),
    sa.Column("user_id", Text, nullable=False),
    sa.Column("device_id", Text, nullable=False),
    sa.Column("created_ts", BigInt, nullable=False),
    sa.Index("access_tokens_user", "user_id", "device_id"),
)

rooms = sa.Table(
    "rooms", metadata,
    sa.Column("room_id", Text, primary_key=True),
    sa.Column("room_version", Text, nullable=False),
    sa.Column("creator", Text),
    sa.Column("is_public", sa.Boolean, nullable=False, default=False),
    sa.Column("created_ts", BigInt, nullable=False),
)

events = sa.Table(
    "events", metadata,
    sa.Column("event_id", Text, primary_key=True),
    sa.Column("room_id", Text, nullable=False),
    sa.Column("room_version", Text, nullable=False),
    sa.Column("stream_ordering", BigInt, nullable=False, unique=True),
    sa.Column("depth", BigInt, nullable=False),
    sa.Column("type", Text, nullable=False),
    sa.Column("state_key", Text),
    sa.Column("sender", Text, nullable=False),
    sa.Column("origin_server_ts", BigInt, nullable=False),
    sa.Column("json", Text, nullable=False),
    sa.Column("rejected_reason", Text),
    # Outliers are known events whose place in the room DAG we don't have.
    sa.Column("outlier", sa.Boolean, nullable=False, default=False),
    # Federation: kept in the DAG, hidden from clients (added by migration v2).
    sa.Column("soft_failed", sa.Boolean, nullable=False, default=False,
              server_default=sa.false()),
    # The redaction applied to this event, if any.
    sa.Column("redacted_by", Text),
    # The local device and client transaction ID that sent it (for local echo).
    sa.Column("txn_device", Text),
    sa.Column("txn_id", Text),
    sa.Index("events_room_stream", "room_id", "stream_ordering"),
    sa.Index("events_room_topo", "room_id", "depth", "stream_ordering"),
)

forward_extremities = sa.Table(
    "forward_extremities", metadata,
    sa.Column("room_id", Text, primary_key=True),
    sa.Column("event_id", Text, primary_key=True),
)

state_groups = sa.Table(
    "state_groups", metadata,
    sa.Column("id", BigInt, primary_key=True, autoincrement=False),
    sa.Column("room_id", Text, nullable=False),
    # A group is a delta over prev_group (or a full snapshot when null).
    sa.Column("prev_group", BigInt),
    sa.Column("chain_length", sa.Integer, nullable=False, default=0),
)

state_groups_state = sa.Table(
    "state_groups_state", metadata,
    sa.Column("state_group", BigInt, nullable=False),
    sa.Column("type", Text, nullable=False),
    sa.Column("state_key", Text, nullable=False),
    sa.Column("event_id", Text, nullable=False),
    sa.Index("state_groups_state_group", "state_group", "type", "state_key"),
)

event_state_groups = sa.Table(
    "event_state_groups", metadata,
    sa.Column("event_id", Text, primary_key=True),
    sa.Column("state_group_before", BigInt),
    sa.Column("state_group_after", BigInt, nullable=False),
)

current_state = sa.Table(
    "current_state", metadata,
    sa.Column("room_id", Text, primary_key=True),
    sa.Column("type", Text, primary_key=True),
    sa.Column("state_key", Text, primary_key=True),
    sa.Column("event_id", Text, nullable=False),
    sa.Column("membership", Text),
    sa.Index("current_state_members", "type", "state_key", "membership"),
)

room_memberships = sa.Table(
    "room_memberships", metadata,
    sa.Column("event_id", Text, primary_key=True),
    sa.Column("room_id", Text, nullable=False),
    sa.Column("user_id", Text, nullable=False),
    sa.Column("sender", Text, nullable=False),
    sa.Column("membership", Text, nullable=False),
    sa.Column("stream_ordering", BigInt, nullable=False),
    sa.Column("forgotten", sa.Boolean, nullable=False, default=False),
    sa.Index("room_memberships_user", "user_id", "stream_ordering"),
    sa.Index("room_memberships_room", "room_id", "user_id"),
)

room_aliases = sa.Table(
    "room_aliases", metadata,
    sa.Column("alias", Text, primary_key=True),
    sa.Column("room_id", Text, nullable=False),
    sa.Column("creator", Text),
    sa.Index("room_aliases_room", "room_id"),
)

event_relations = sa.Table(
    "event_relations", metadata,
    sa.Column("event_id", Text, primary_key=True),
    sa.Column("relates_to_id", Text, nullable=False),
    sa.Column("rel_type", Text, nullable=False),
    sa.Column("aggregation_key", Text),
    sa.Column("room_id", Text, nullable=False),
    sa.Index("event_relations_target", "relates_to_id", "rel_type"),
)

# Client transaction IDs: (user, device, endpoint path) -> the original answer.
client_txns = sa.Table(
    "client_txns", metadata,
    sa.Column("user_id", Text, primary_key=True),
    sa.Column("device_id", Text, primary_key=True),
    sa.Column("path", Text, primary_key=True),
    sa.Column("response_json", Text, nullable=False),
    sa.Column("created_ts", BigInt, nullable=False),
)

filters = sa.Table(
    "filters", metadata,
    sa.Column("user_id", Text, primary_key=True),
    sa.Column("filter_id", BigInt, primary_key=True, autoincrement=False),
    sa.Column("json", Text, nullable=False),
)

account_data = sa.Table(
    "account_data", metadata,
    sa.Column("user_id", Text, primary_key=True),
    sa.Column("room_id", Text, primary_key=True),  # "" for global account data
    sa.Column("type", Text, primary_key=True),
    sa.Column("content", Text, nullable=False),
    sa.Column("stream_id", BigInt, nullable=False),
    sa.Index("account_data_stream", "user_id", "stream_id"),
)

receipts = sa.Table(
    "receipts", metadata,
    sa.Column("room_id", Text, primary_key=True),
    sa.Column("receipt_type", Text, primary_key=True),
    sa.Column("user_id", Text, primary_key=True),
    sa.Column("thread_id", Text, primary_key=True),  # "" when unthreaded
    sa.Column("event_id", Text, nullable=False),
    sa.Column("ts", BigInt, nullable=False),
    sa.Column("stream_id", BigInt, nullable=False),
    sa.Index("receipts_stream", "stream_id"),
)

presence = sa.Table(
    "presence", metadata,
    sa.Column("user_id", Text, primary_key=True),
    sa.Column("state", Text, nullable=False),
    sa.Column("status_msg", Text),
    sa.Column("last_active_ts", BigInt, nullable=False),
    sa.Column("currently_active", sa.Boolean, nullable=False, default=False),
    sa.Column("stream_id", BigInt, nullable=False),
)

to_device = sa.Table(
    "to_device", metadata,
    sa.Column("stream_id", BigInt, primary_key=True, autoincrement=False),
    sa.Column("user_id", Text, nullable=False),
    sa.Column("device_id", Text, nullable=False),
    sa.Column("sender", Text, nullable=False),
    sa.Column("type", Text, nullable=False),
    sa.Column("content", Text, nullable=False),
    sa.Index("to_device_target", "user_id", "device_id", "stream_id"),
)

device_keys = sa.Table(
    "device_keys", metadata,
    sa.Column("user_id", Text, primary_key=True),
    sa.Column("device_id", Text, primary_key=True),
    sa.Column("json", Text, nullable=False),
)

one_time_keys = sa.Table(
    "one_time_keys", metadata,
    sa.Column("user_id", Text, primary_key=True),
    sa.Column("device_id", Text, primary_key=True),
    sa.Column("key_id", Text, primary_key=True),  # "<algorithm>:<id>"
    sa.Column("algorithm", Text, nullable=False),
    sa.Column("json", Text, nullable=False),
    sa.Column("fallback", sa.Boolean, nullable=False, default=False),
)

# One fallback key per device and algorithm (spec: /keys/upload `fallback_keys`);
# `used` once handed out by /keys/claim, until the device replaces it.
e2e_fallback_keys = sa.Table(
    "e2e_fallback_keys", metadata,
    sa.Column("user_id", Text, primary_key=True),
    sa.Column("device_id", Text, primary_key=True),
    sa.Column("algorithm", Text, primary_key=True),
    sa.Column("key_id", Text, nullable=False),  # "<algorithm>:<id>"
    sa.Column("json", Text, nullable=False),
    sa.Column("used", sa.Boolean, nullable=False, default=False),
)

device_list_changes = sa.Table(
    "device_list_changes", metadata,
    sa.Column("stream_id", BigInt, primary_key=True, autoincrement=False),
    sa.Column("user_id", Text, nullable=False),
    sa.Index("device_list_changes_user", "user_id", "stream_id"),
)

push_rules = sa.Table(
    "push_rules", metadata,
    sa.Column("user_id", Text, primary_key=True),
    # The user's changes over the server-default rules, as JSON.
    sa.Column("json", Text, nullable=False),
)

event_push_actions = sa.Table(
    "event_push_actions", metadata,
    sa.Column("room_id", Text, primary_key=True),
    sa.Column("user_id", Text, primary_key=True),
    sa.Column("event_id", Text, primary_key=True),
    sa.Column("stream_ordering", BigInt, nullable=False),
    sa.Column("highlight", sa.Boolean, nullable=False),
    # The event's thread root, or "main" (counts are partitioned per thread).
    sa.Column("thread_id", Text, nullable=False, default="main"),
    sa.Index("event_push_actions_user", "user_id", "room_id", "stream_ordering"),
)

# Federation sender: what each destination server is owed, in order. A row is a
# PDU (event_id) or an EDU (edu_json); txn_id binds it to the transaction that
# carries it, re-sent with the same txnId until acknowledged.
federation_outbox = sa.Table(
    "federation_outbox", metadata,
    sa.Column("id", BigInt().with_variant(sa.Integer, "sqlite"), primary_key=True,
              autoincrement=True),
    sa.Column("destination", Text, nullable=False),
    sa.Column("event_id", Text),
    sa.Column("edu_json", Text),
    sa.Column("txn_id", Text),
    sa.Index("federation_outbox_destination", "destination", "id"),
)

# One row: the stream position up to which local events have been queued.
federation_sender_position = sa.Table(
    "federation_sender_position", metadata,
    sa.Column("stream_ordering", BigInt, nullable=False),
)

# Local media (the content repository); the bytes live in data_dir/media.
media = sa.Table(
    "media", metadata,
    sa.Column("media_id", Text, primary_key=True),
    sa.Column("user_id", Text, nullable=False),
    sa.Column("content_type", Text, nullable=False),
    sa.Column("upload_name", Text),
    sa.Column("size", BigInt, nullable=False),
    sa.Column("created_ts", BigInt, nullable=False),
)

# Other servers' signing keys, as fetched (directly or through a notary): a
# current key has valid_until_ts, a former one expired_ts. key_json is the
# signed document it came from, served again when we act as a notary.
server_keys = sa.Table(
    "server_keys", metadata,
    sa.Column("server_name", Text, primary_key=True),
    sa.Column("key_id", Text, primary_key=True),
    sa.Column("verify_key", Text, nullable=False),
    sa.Column("valid_until_ts", BigInt),
    sa.Column("expired_ts", BigInt),
    sa.Column("fetched_ts", BigInt, nullable=False),
    sa.Column("key_json", Text, nullable=False),
)
