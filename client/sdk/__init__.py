"""The asyncio client SDK: sessions, the live model, sending, history, media."""

from client.sdk.client import MatrixClient
from client.sdk.errors import DiscoveryError, MatrixClientError, NoSessionError
from client.sdk.session import Session, config_dir, load_session, save_session

__all__ = [
           "DiscoveryError",
           "MatrixClient",
           "MatrixClientError",
           "NoSessionError",
           "Session",
           "config_dir",
           "load_session",
           "save_session",
]
