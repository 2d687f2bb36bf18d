"""`PUT /_matrix/federation/v1/send/{txnId}`: a transaction of PDUs and EDUs.

Always 200 with a verdict per PDU (a bad PDU never fails the transaction);
a retried transaction (same origin and txnId) gets the first answer back
without being processed again. One transaction per origin at a time, so a
server's events are handled in the order it sent them.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from typing import Any, Awaitable, Callable, Protocol

from twisted.internet.defer import DeferredLock
from twisted.web.http import Request

from ..http import JsonRouter, parse_json_body

logger = logging.getLogger(__name__)

MAX_PDUS = 50
MAX_EDUS = 100
REMEMBERED_TRANSACTIONS = 1000

Authenticate = Callable[[Request], Awaitable[str]]


class PduReceiver(Protocol):
    async def on_pdus(self, origin: str, pdus: list[Any]) -> dict[str, dict[str, str]]: ...


class EduReceiver(Protocol):
    async def handle_edus(self, origin: str, edus: list[Any]) -> None: ...


class TransactionResource:
    def __init__(self, receiver: PduReceiver, edus: EduReceiver | None) -> None:
        self._receiver = receiver
        self._edus = edus
        self._answers: OrderedDict[tuple[str, str], dict[str, Any]] = OrderedDict()
        self._locks: dict[str, DeferredLock] = {}

    async def on_transaction(self, origin: str, txn_id: str, body: dict[str, Any]
                             ) -> dict[str, Any]:
        pdus, edus = _parse(body)
        lock = self._locks.setdefault(origin, DeferredLock())
        async with lock:
            key = (origin, txn_id)
            if key in self._answers:
                return self._answers[key]
            results = await self._receiver.on_pdus(origin, pdus)
            if self._edus is not None and edus:
                try:
                    await self._edus.handle_edus(origin, edus)
                except Exception:  # EDUs are best effort; the PDUs' verdicts stand
                    logger.exception("EDUs from %s failed", origin)
            answer = {"pdus": results}
            self._answers[key] = answer
            while len(self._answers) > REMEMBERED_TRANSACTIONS:
                self._answers.popitem(last=False)
            return answer


def _parse(body: dict[str, Any]) -> tuple[list[Any], list[Any]]:
    """The PDUs and EDUs of a body; the route's schema (federation/sendTransaction)
    has checked both are arrays within MAX_PDUS and MAX_EDUS."""
    return body.get("pdus", []), body.get("edus", [])


def register(router: JsonRouter, authenticate: Authenticate,
             transactions: TransactionResource) -> None:
    async def send(request: Request, txn_id: str) -> tuple[int, Any]:
        origin = await authenticate(request)
        body = parse_json_body(request, allow_empty=False)
        return 200, await transactions.on_transaction(origin, txn_id, body)

    router.add("PUT", "/_matrix/federation/v1/send/{txn_id}", send,
               body="federation/sendTransaction")
