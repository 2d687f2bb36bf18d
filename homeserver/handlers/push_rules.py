"""Reading and changing a user's push rules.

Every change is also published as the `m.push_rules` global account data
event (push module, "Push Rules: Events"), so clients see it in /sync.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from typing import Any, Callable

from twisted.internet.defer import DeferredLock

from ..push.rules import PushRule
from ..push.ruleset import UserPushRules, check_kind
from ..storage.account_data import AccountDataStore
from ..storage.push_rules import PushRuleStore
from ..storage.stream import StreamIdGenerator
from ..sync.notifier import Notifier

logger = logging.getLogger(__name__)

PUSH_RULES_TYPE = "m.push_rules"


class PushRulesHandler:
    def __init__(self, store: PushRuleStore, account_data: AccountDataStore,
                 stream: StreamIdGenerator, notifier: Notifier, cache_size: int = 10000) -> None:
        self._store = store
        self._account_data = account_data
        self._stream = stream
        self._notifier = notifier
        # user -> (their changes, every rule in evaluation order)
        self._cache: OrderedDict[str, tuple[UserPushRules, list[PushRule]]] = OrderedDict()
        self._cache_size = cache_size
        # Changes are read-modify-write of one document: one at a time.
        self._lock = DeferredLock()

    # Reading -----------------------------------------------------------------

    def _remember(self, user_id: str, rules: UserPushRules) -> tuple[UserPushRules, list[PushRule]]:
        entry = (rules, rules.ordered(user_id))
        self._cache[user_id] = entry
        self._cache.move_to_end(user_id)
        while len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return entry

    async def _load(self, user_id: str) -> UserPushRules:
        return (await self._entries([user_id]))[user_id][0]

    async def _entries(self, user_ids: list[str]
                       ) -> dict[str, tuple[UserPushRules, list[PushRule]]]:
        found: dict[str, tuple[UserPushRules, list[PushRule]]] = {}
        missing: list[str] = []
        for user_id in user_ids:
            entry = self._cache.get(user_id)
            if entry is None:
                missing.append(user_id)
            else:
                self._cache.move_to_end(user_id)
                found[user_id] = entry
        if missing:
            docs = await self._store.get_many(missing)
            for user_id in missing:
                # A change made while we read has already cached the newer rules.
                entry = self._cache.get(user_id)
                found[user_id] = entry or self._remember(
                    user_id, UserPushRules.from_json(docs.get(user_id)))
        return found

    async def rules_for_users(self, user_ids: list[str]) -> dict[str, list[PushRule]]:
        """Each user's rules in evaluation order (one query for the uncached)."""
        return {u: entry[1] for u, entry in (await self._entries(user_ids)).items()}

    async def ruleset(self, user_id: str) -> dict[str, Any]:
        """GET /pushrules/: `{"global": Ruleset}`."""
        return {"global": (await self._load(user_id)).ruleset_json(user_id)}

    async def kind_rules(self, user_id: str, kind: str) -> list[dict[str, Any]]:
        rules = await self._load(user_id)
        return [r.to_json() for r in rules.kind_rules(user_id, check_kind(kind))]

    async def get_rule(self, user_id: str, kind: str, rule_id: str) -> dict[str, Any]:
        return (await self._load(user_id)).get(user_id, kind, rule_id).to_json()

    # Changing ----------------------------------------------------------------

    async def put_rule(self, user_id: str, kind: str, rule_id: str, body: dict[str, Any],
                       before: str | None, after: str | None) -> None:
        await self._change(user_id, lambda r: r.put(kind, rule_id, body, before, after))

    async def delete_rule(self, user_id: str, kind: str, rule_id: str) -> None:
        await self._change(user_id, lambda r: r.delete(kind, rule_id))

    async def set_enabled(self, user_id: str, kind: str, rule_id: str, enabled: bool) -> None:
        await self._change(user_id, lambda r: r.set_enabled(user_id, kind, rule_id, enabled))

    async def set_actions(self, user_id: str, kind: str, rule_id: str, actions: Any) -> None:
        await self._change(user_id, lambda r: r.set_actions(user_id, kind, rule_id, actions))

    async def _change(self, user_id: str, change: Callable[[UserPushRules], None]) -> None:
        async with self._lock:
            rules = (await self._load(user_id)).copy()
            change(rules)  # raises MatrixError before anything is written
            await self._store.put(user_id, rules.to_json())
            self._remember(user_id, rules)
            with self._stream.reserve() as (position,):
                await self._account_data.put(user_id, "", PUSH_RULES_TYPE,
                                             {"global": rules.ruleset_json(user_id)}, position)
        logger.info("push rules of %s changed", user_id)
        self._notifier.notify(position, users=[user_id], kind="account_data")
