"""The homeserver's minimal content repository, through the SDK and raw HTTP."""

from __future__ import annotations

import os

import pytest

from client.sdk.errors import MatrixClientError
from client.sdk.media import parse_mxc
from tests.client.helpers import new_client, run
from tests.harness import HomeserverProcess, PostgresCluster, http_json

pytestmark = pytest.mark.timeout(120)


def _raw_get(url: str, token: str | None = None) -> tuple[int, bytes, dict[str, str]]:
    import urllib.error
    import urllib.request

    request = urllib.request.Request(url)
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.read(), dict(response.headers)
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read(), dict(exc.headers)


def test_upload_download_round_trip(client_server: HomeserverProcess, unique: str) -> None:
    data = os.urandom(300_000) + b"\x00end"

    async def scenario() -> tuple[str, str]:
        client = await new_client(client_server, unique)
        try:
            uri = await client.upload(data, "image/png", "pic ture.png")
            assert parse_mxc(uri)[0] == "localhost"
            got, content_type = await client.download(uri)
            assert got == data and content_type == "image/png"
            return uri, client.access_token
        finally:
            await client.close()

    uri, token = run(scenario())
    server, media_id = parse_mxc(uri)
    base = client_server.base_url
    status, body, headers = _raw_get(
        f"{base}/_matrix/client/v1/media/download/{server}/{media_id}/other.png", token)
    assert status == 200 and body == data
    assert headers["Content-Disposition"] == "inline; filename*=utf-8''other.png"
    assert "sandbox" in headers["Content-Security-Policy"]
    # The legacy endpoint needs no token; the authenticated one does.
    status, body, headers = _raw_get(f"{base}/_matrix/media/v3/download/{server}/{media_id}")
    assert status == 200 and body == data
    assert headers["Content-Disposition"] == "inline; filename*=utf-8''pic%20ture.png"
    status, _, _ = _raw_get(f"{base}/_matrix/client/v1/media/download/{server}/{media_id}")
    assert status == 401


def test_media_errors_and_config(client_server: HomeserverProcess, unique: str) -> None:
    async def scenario() -> str:
        client = await new_client(client_server, unique)
        try:
            with pytest.raises(MatrixClientError) as missing:
                await client.download("mxc://localhost/doesnotexist")
            assert (missing.value.status, missing.value.errcode) == (404, "M_NOT_FOUND")
            with pytest.raises(MatrixClientError) as remote:
                await client.download("mxc://elsewhere.example/abc")
            assert remote.value.errcode == "M_NOT_FOUND"
            with pytest.raises(MatrixClientError) as bad_type:
                await client.upload(b"x", "not a type")
            assert (bad_type.value.status, bad_type.value.errcode) == (400, "M_INVALID_PARAM")
            uri = await client.upload(b"<script>alert(1)</script>", "text/html")
            return uri + " " + client.access_token
        finally:
            await client.close()

    uri, token = run(scenario()).split(" ")
    base = client_server.base_url
    status, body = http_json("GET", f"{base}/_matrix/client/v1/media/config", token=token)
    assert status == 200 and body == {"m.upload.size": 52_428_800}
    server, media_id = parse_mxc(uri)
    status, _, headers = _raw_get(f"{base}/_matrix/media/v3/download/{server}/{media_id}")
    assert status == 200 and headers["Content-Disposition"] == "attachment"
    status, body = http_json("POST", f"{base}/_matrix/media/v3/upload", raw=b"x")
    assert status == 401 and body["errcode"] == "M_MISSING_TOKEN"


def test_upload_size_limit(unique: str) -> None:
    server = HomeserverProcess()
    text = server.config_path.read_text()
    server.config_path.write_text(text.replace("max_upload_bytes: 52428800",
                                               "max_upload_bytes: 2000000"))
    server.start()
    try:
        async def scenario() -> None:
            client = await new_client(server, unique)
            try:
                await client.upload(b"a" * 1_500_000, "application/octet-stream")  # > 1 MiB JSON
                with pytest.raises(MatrixClientError) as too_big:
                    await client.upload(b"a" * 2_000_001, "application/octet-stream")
                assert (too_big.value.status, too_big.value.errcode) == (413, "M_TOO_LARGE")
            finally:
                await client.close()

        run(scenario())
        # Other endpoints keep the small request-body limit.
        status, body = http_json("POST", f"{server.base_url}/_matrix/client/v3/login",
                                 raw=b"{" + b" " * 1_100_000 + b"}")
        assert status == 413 and body["errcode"] == "M_TOO_LARGE"
    finally:
        server.cleanup()


def test_media_on_postgresql(unique: str) -> None:
    with PostgresCluster.running() as cluster:
        server = HomeserverProcess(database=cluster.create_database(f"media_{unique}")).start()

        async def scenario() -> None:
            client = await new_client(server, unique)
            try:
                uri = await client.upload(b"on postgres", "text/plain", "pg.txt")
                assert await client.download(uri) == (b"on postgres", "text/plain")
            finally:
                await client.close()

        try:
            run(scenario())
        finally:
            server.cleanup()
