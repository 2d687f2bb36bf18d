"""Media: upload to the homeserver's content repository, download by mxc URI."""

from __future__ import annotations

from urllib.parse import quote

from client.sdk.errors import MatrixClientError
from client.sdk.http import HttpApi, path_segment

UPLOAD_PATH = "/_matrix/media/v3/upload"
DOWNLOAD_PATH = "/_matrix/client/v1/media/download"


def parse_mxc(uri: str) -> tuple[str, str]:
    """`mxc://server/media_id` -> (server, media_id)."""
    if not uri.startswith("mxc://"):
        raise MatrixClientError(f"{uri!r} is not an mxc:// URI")
    server, _, media_id = uri[len("mxc://"):].partition("/")
    if not server or not media_id or "/" in media_id:
        raise MatrixClientError(f"{uri!r} is not an mxc://server/id URI")
    return server, media_id


async def upload(http: HttpApi, data: bytes, content_type: str,
                 filename: str | None = None) -> str:
    path = UPLOAD_PATH + (f"?filename={quote(filename, safe='')}" if filename else "")
    answer = await http.request("POST", path, data=data, content_type=content_type)
    return str(answer["content_uri"])


async def download(http: HttpApi, mxc_uri: str) -> tuple[bytes, str]:
    server, media_id = parse_mxc(mxc_uri)
    data, content_type, _ = await http.download(
        f"{DOWNLOAD_PATH}/{path_segment(server)}/{path_segment(media_id)}")
    return data, content_type
