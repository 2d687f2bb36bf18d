"""Push rules: GET /pushrules/, and GET|PUT|DELETE of single rules, their
`enabled` flag and their `actions` (spec: "Push Rules: API")."""

from __future__ import annotations

from typing import Any

from twisted.web.http import Request

from ...handlers.auth import Authenticator
from ...handlers.push_rules import PushRulesHandler
from ..http import JsonRouter, parse_json_body, query_arg
from .common import requester


def register(router: JsonRouter, auth: Authenticator, push_rules: PushRulesHandler) -> None:
    async def get_all(request: Request) -> tuple[int, Any]:
        who = await requester(auth, request)
        return 200, await push_rules.ruleset(who.user_id)

    async def get_global(request: Request) -> tuple[int, Any]:
        who = await requester(auth, request)
        return 200, (await push_rules.ruleset(who.user_id))["global"]

    async def get_rule(request: Request, kind: str, rule_id: str) -> tuple[int, Any]:
        who = await requester(auth, request)
        if not rule_id:  # `/pushrules/global/{kind}/`: the kind's rules (as Synapse)
            return 200, await push_rules.kind_rules(who.user_id, kind)
        return 200, await push_rules.get_rule(who.user_id, kind, rule_id)

    async def put_rule(request: Request, kind: str, rule_id: str) -> tuple[int, Any]:
        who = await requester(auth, request)
        body = parse_json_body(request, allow_empty=False)
        await push_rules.put_rule(who.user_id, kind, rule_id, body,
                                  before=query_arg(request, "before"),
                                  after=query_arg(request, "after"))
        return 200, {}

    async def delete_rule(request: Request, kind: str, rule_id: str) -> tuple[int, Any]:
        who = await requester(auth, request)
        await push_rules.delete_rule(who.user_id, kind, rule_id)
        return 200, {}

    async def get_enabled(request: Request, kind: str, rule_id: str) -> tuple[int, Any]:
        who = await requester(auth, request)
        rule = await push_rules.get_rule(who.user_id, kind, rule_id)
        return 200, {"enabled": rule["enabled"]}

    async def put_enabled(request: Request, kind: str, rule_id: str) -> tuple[int, Any]:
        who = await requester(auth, request)
        enabled = parse_json_body(request, allow_empty=False)["enabled"]
        await push_rules.set_enabled(who.user_id, kind, rule_id, enabled)
        return 200, {}

    async def get_actions(request: Request, kind: str, rule_id: str) -> tuple[int, Any]:
        who = await requester(auth, request)
        rule = await push_rules.get_rule(who.user_id, kind, rule_id)
        return 200, {"actions": rule["actions"]}

    async def put_actions(request: Request, kind: str, rule_id: str) -> tuple[int, Any]:
        who = await requester(auth, request)
        actions = parse_json_body(request, allow_empty=False)["actions"]
        await push_rules.set_actions(who.user_id, kind, rule_id, actions)
        return 200, {}

    for prefix in ("/_matrix/client/v3", "/_matrix/client/r0"):
        base = f"{prefix}/pushrules"
        router.add("GET", f"{base}/", get_all)
        router.add("GET", f"{base}/global/", get_global)
        rule = f"{base}/global/{{kind}}/{{rule_id}}"
        router.add("GET", rule, get_rule)
        router.add("PUT", rule, put_rule, body="client/setPushRule")
        router.add("DELETE", rule, delete_rule)
        router.add("GET", f"{rule}/enabled", get_enabled)
        router.add("PUT", f"{rule}/enabled", put_enabled, body="client/setPushRuleEnabled")
        router.add("GET", f"{rule}/actions", get_actions)
        router.add("PUT", f"{rule}/actions", put_actions, body="client/setPushRuleActions")
