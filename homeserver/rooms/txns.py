"""The client transactions (txnIds) committed lately by the room writer.

A retried txnId answers the event it made. The writer looks the stored answer
up before taking the room's lock, so the lookup (which waits behind the
database's current commit) never holds up the room's other sends; a
transaction committed while the sender waited for the lock is found here.
"""

from __future__ import annotations

from collections import OrderedDict

# (user ID, device ID, endpoint path with the txnId)
TxnKey = tuple[str, str, str]


class RecentTxns:
    """Event IDs of the last `size` committed transactions, and a count of all
    committed so far, which tells whether one committed since a lookup may
    have been forgotten already."""

    def __init__(self, size: int = 4096) -> None:
        self._event_ids: OrderedDict[TxnKey, str] = OrderedDict()
        self._size = size
        self._committed = 0

    def mark(self) -> int:
        """A point to compare with later (`remembers_since`)."""
        return self._committed

    def add(self, txn: TxnKey, event_id: str) -> None:
        self._event_ids[txn] = event_id
        self._committed += 1
        while len(self._event_ids) > self._size:
            self._event_ids.popitem(last=False)

    def get(self, txn: TxnKey) -> str | None:
        return self._event_ids.get(txn)

    def remembers_since(self, mark: int) -> bool:
        """Whether every transaction committed since `mark` is still here."""
        return self._committed - mark <= self._size
