"""The HTTP layer under the REST resources (homeserver/rest/site.py), driven
through Twisted's real HTTP/1.1 channel on an in-memory transport."""

from __future__ import annotations

import json
from typing import Any

from twisted.internet.testing import MemoryReactorClock, StringTransport

from homeserver.rest.site import NOT_DONE_YET, ApiRequest, ApiSite, Root, make_site


class Recorder:
    """A resource that remembers its requests and answers as told."""

    def __init__(self, answer: Any = NOT_DONE_YET) -> None:
        self.answer = answer
        self.requests: list[ApiRequest] = []

    def render(self, request: ApiRequest) -> Any:
        self.requests.append(request)
        if isinstance(self.answer, Exception):
            raise self.answer
        return self.answer


def _serve(site: ApiSite, raw: bytes) -> bytes:
    channel = site.buildProtocol(None)
    transport = StringTransport()
    channel.makeConnection(transport)
    channel.dataReceived(raw)
    return transport.value()


def _site(resource: Any, max_body_bytes: int = 1000) -> ApiSite:
    site = make_site(resource, max_body_bytes)
    site.reactor = MemoryReactorClock()
    return site


def _split(response: bytes) -> tuple[bytes, dict[bytes, bytes], bytes]:
    head, _, body = response.partition(b"\r\n\r\n")
    status, *lines = head.split(b"\r\n")
    headers = dict(line.lower().split(b": ", 1) for line in lines)
    return status, headers, body


def test_a_resource_answers_later_and_the_request_carries_a_date() -> None:
    resource = Recorder()
    site = _site(resource)
    channel = site.buildProtocol(None)
    transport = StringTransport()
    channel.makeConnection(transport)
    channel.dataReceived(b"GET /a/b?x=1 HTTP/1.1\r\nHost: h\r\n\r\n")
    assert transport.value() == b""  # nothing until the resource answers
    [request] = resource.requests
    assert request.path == b"/a/b" and request.args == {b"x": [b"1"]}
    request.setHeader(b"Content-Length", b"2")
    request.write(b"{}")
    request.finish()
    status, headers, body = _split(transport.value())
    assert status == b"HTTP/1.1 200 OK" and body == b"{}" and b"date" in headers


def test_bytes_rendered_at_once_are_sent_with_their_length() -> None:
    # autobahn's WebSocket resource answers a request it cannot upgrade so.
    status, headers, body = _split(_serve(_site(Recorder(b"upgrade me")),
                                          b"GET / HTTP/1.1\r\nHost: h\r\n\r\n"))
    assert status == b"HTTP/1.1 200 OK" and body == b"upgrade me"
    assert headers[b"content-length"] == b"10"


def test_a_resource_that_raises_gets_a_json_500_not_html(caplog) -> None:
    status, headers, body = _split(_serve(_site(Recorder(RuntimeError("bug"))),
                                          b"GET /x HTTP/1.1\r\nHost: h\r\n\r\n"))
    assert status.startswith(b"HTTP/1.1 500")
    assert headers[b"content-type"] == b"application/json"
    assert json.loads(body)["errcode"] == "M_UNKNOWN"
    assert "500 on GET /x" in caplog.text


def test_a_form_post_body_never_becomes_query_arguments() -> None:
    resource = Recorder()
    form = b"access_token=stolen"
    _serve(_site(resource), b"POST /p?limit=5 HTTP/1.1\r\nHost: h\r\n"
           b"Content-Type: application/x-www-form-urlencoded\r\n"
           b"Content-Length: %d\r\n\r\n%s" % (len(form), form))
    [request] = resource.requests
    assert request.args == {b"limit": [b"5"]}
    assert request.content.read() == form


def test_a_body_over_the_limit_is_not_buffered() -> None:
    resource = Recorder()
    body = b"x" * 1500
    _serve(_site(resource, max_body_bytes=1000),
           b"PUT /p HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
           b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body))
    [request] = resource.requests
    assert request.body_too_large and request.content.read() == b""


def test_the_root_sends_exact_paths_to_their_resource() -> None:
    router, stream = Recorder(b"router"), Recorder(b"stream")
    site = _site(Root(router, {b"/stream": stream}))
    assert _split(_serve(site, b"GET /stream HTTP/1.1\r\nHost: h\r\n\r\n"))[2] == b"stream"
    assert _split(_serve(site, b"GET /stream/x HTTP/1.1\r\nHost: h\r\n\r\n"))[2] == b"router"
