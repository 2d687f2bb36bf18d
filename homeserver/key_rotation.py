"""`rotate-signing-key`: a new signing key; the old one is kept as an old key.

The old key goes to `old_signing_keys` (expired now), so that
`/_matrix/key/v2/server` lists it in `old_verify_keys` and events it signed
still verify elsewhere. The YAML file is edited in place, comments kept.
"""

from __future__ import annotations

import json
import re
import secrets
import time
from pathlib import Path

import yaml

from federation.protocol.signing import generate_server_key

from .config import ConfigError, load

_SIGNING_KEY_LINE = re.compile(r"^signing_key:.*$", re.MULTILINE)
_OLD_KEYS_LINE = re.compile(r"^old_signing_keys:.*$", re.MULTILINE)


def rotate_signing_key(config_path: Path, now_ms: int | None = None) -> str:
    """Rotate the key in `config_path`; returns the new key id."""
    config = load(config_path)
    text = config_path.read_text()
    raw = yaml.safe_load(text)
    old_keys = dict(raw.get("old_signing_keys") or {})
    old_keys[config.signing_key.key_id] = {
        "key": config.signing_key.verify_key_base64,
        "expired_ts": int(time.time() * 1000) if now_ms is None else now_ms,
    }
    new_key = generate_server_key(config.server_name, "a_" + secrets.token_hex(2))
    text = _SIGNING_KEY_LINE.sub(lambda _m: f"signing_key: {new_key.serialize()}", text, 1)
    # JSON is YAML: one flow-style line holds every old key.
    old_line = f"old_signing_keys: {json.dumps(old_keys)}"
    if _OLD_KEYS_LINE.search(text):
        text = _OLD_KEYS_LINE.sub(lambda _m: old_line, text, 1)
    else:
        text = text.rstrip("\n") + f"\n\n{old_line}\n"
    if yaml.safe_load(text).get("old_signing_keys") != old_keys:
        raise ConfigError("old_signing_keys is not on one line; edit the file by hand")
    config_path.write_text(text)
    return new_key.key_id
