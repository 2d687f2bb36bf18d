"""The stored login session: where it lives and how it is written (0600, atomically)."""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

from client.sdk.errors import NoSessionError

CONFIG_DIR_ENV = "GUILDHALL_CONFIG_DIR"
SESSION_FILE = "session.json"


@dataclass(frozen=True)
class Session:
    user_id: str
    device_id: str
    access_token: str
    homeserver_url: str

    @classmethod
    def from_dict(cls, data: dict[str, object]) -> Session:
        fields = ("user_id", "device_id", "access_token", "homeserver_url")
        if not all(isinstance(data.get(name), str) for name in fields):
            raise NoSessionError("the stored session is incomplete; log in again")
        return cls(**{name: str(data[name]) for name in fields})


def config_dir(override: str | os.PathLike[str] | None = None) -> Path:
    """`override`, else $GUILDHALL_CONFIG_DIR, else $XDG_CONFIG_HOME/guildhall."""
    if override:
        return Path(override)
    if os.environ.get(CONFIG_DIR_ENV):
        return Path(os.environ[CONFIG_DIR_ENV])
    base = os.environ.get("XDG_CONFIG_HOME") or os.path.join(Path.home(), ".config")
    return Path(base) / "guildhall"


def session_path(directory: Path) -> Path:
    return directory / SESSION_FILE


def save_session(session: Session, directory: Path) -> Path:
    """Write the session readable by its owner only; never leave a half-written file."""
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    target = session_path(directory)
    fd, temp = tempfile.mkstemp(dir=directory, prefix=".session-")
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w") as handle:
            json.dump(asdict(session), handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, target)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
    return target


def load_session(directory: Path) -> Session:
    target = session_path(directory)
    try:
        data = json.loads(target.read_text())
    except FileNotFoundError:
        raise NoSessionError(
            f"not logged in (no {target}); run `login` or pass --user and --password") from None
    except ValueError:
        raise NoSessionError(f"{target} is not valid JSON; log in again") from None
    if not isinstance(data, dict):
        raise NoSessionError(f"{target} is not a session; log in again")
    return Session.from_dict(data)


def delete_session(directory: Path) -> None:
    session_path(directory).unlink(missing_ok=True)
