"""Space hierarchies for clients and for other servers, in-process."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from homeserver.handlers.hierarchy import HierarchyQuery, SpaceHierarchyHandler

from .inprocess import ALICE, BOB, REMOTE, STRANGER, Env, build_env, done, refused

CAROL = "@carol:hs.example"


@pytest.fixture
def env(tmp_path: Path) -> Iterator[Env]:
    yield from build_env(tmp_path)


@pytest.fixture
def hierarchy(env: Env) -> SpaceHierarchyHandler:
    return SpaceHierarchyHandler(env.writer)


class Spaces:
    """A space with a public room, a private room, a suggested room, a sub-space
    (whose room links back to the top: a loop), a child we don't hold, and a
    child without `via`."""

    def __init__(self, env: Env) -> None:
        self.space = env.room(preset="public_chat", name="Guild",
                              creation_content={"type": "m.space"})
        self.public = env.room(preset="public_chat", name="general")
        self.private = env.room(preset="private_chat", name="staff")
        self.suggested = env.room(preset="public_chat", name="welcome")
        self.sub = env.room(preset="public_chat", name="Sub", creation_content={"type": "m.space"})
        self.deep = env.room(preset="public_chat", name="deep")
        self.unknown = "!nowhere:hs.example"
        self.no_via = env.room(preset="public_chat", name="no via")
        via = {"via": ["hs.example"]}
        env.send(self.space, "m.space.child", {**via, "order": "b"}, state_key=self.public)
        env.send(self.space, "m.space.child", {**via, "order": "a", "suggested": True},
                 state_key=self.suggested)
        for child in (self.private, self.sub, self.unknown):
            env.send(self.space, "m.space.child", via, state_key=child)
        env.send(self.space, "m.space.child", {"via": []}, state_key=self.no_via)
        env.send(self.sub, "m.space.child", via, state_key=self.deep)
        env.send(self.deep, "m.space.child", via, state_key=self.space)


def names(rooms: list[dict]) -> list[str]:  # type: ignore[type-arg]
    return [r.get("name", "") for r in rooms]


# Federation ---------------------------------------------------------------------------


def test_federation_hierarchy_lists_children_and_inaccessible_ones(
        env: Env, hierarchy: SpaceHierarchyHandler) -> None:
    spaces = Spaces(env)
    answer = done(hierarchy.federation_hierarchy(REMOTE, spaces.space, False))
    room = answer["room"]
    assert room["room_id"] == spaces.space and room["room_type"] == "m.space"
    assert room["num_joined_members"] == 1 and room["join_rule"] == "public"
    assert room["room_version"] == "11"
    children_state = room["children_state"]
    # Ordered by `order` first; the child without via is no child.
    assert [c["state_key"] for c in children_state[:2]] == [spaces.suggested, spaces.public]
    assert {c["state_key"] for c in children_state} == \
        {spaces.suggested, spaces.public, spaces.private, spaces.sub, spaces.unknown}
    assert all(set(c) == {"type", "state_key", "content", "sender", "origin_server_ts"}
               for c in children_state)
    assert names(answer["children"])[:2] == ["welcome", "general"]
    assert set(names(answer["children"])) == {"welcome", "general", "Sub"}
    assert answer["inaccessible_children"] == [spaces.private]


def test_federation_hierarchy_suggested_only(env: Env, hierarchy: SpaceHierarchyHandler) -> None:
    spaces = Spaces(env)
    answer = done(hierarchy.federation_hierarchy(REMOTE, spaces.space, True))
    assert [c["state_key"] for c in answer["room"]["children_state"]] == [spaces.suggested]
    assert names(answer["children"]) == ["welcome"]


def test_federation_hierarchy_of_an_unknown_or_closed_room_is_not_found(
        env: Env, hierarchy: SpaceHierarchyHandler) -> None:
    private = env.room(preset="private_chat")
    for room_id in ("!unknown:hs.example", private):
        error = refused(hierarchy.federation_hierarchy(REMOTE, room_id, False))
        assert (error.status, error.errcode) == (404, "M_NOT_FOUND")
    # ... unless the server has a member there.
    env.send(private, "m.room.member", {"membership": "invite"}, ALICE, BOB)
    env.join(private)
    assert done(hierarchy.federation_hierarchy(REMOTE, private, False))["room"]["room_id"] \
        == private


def test_restricted_children_are_accessible_through_the_allowed_room(
        env: Env, hierarchy: SpaceHierarchyHandler) -> None:
    space = env.room(preset="public_chat", creation_content={"type": "m.space"})
    channel = env.room(preset="private_chat", name="channel", initial_state=[
        {"type": "m.room.join_rules", "content": {
            "join_rule": "restricted",
            "allow": [{"type": "m.room_membership", "room_id": space}]}}])
    env.send(space, "m.space.child", {"via": ["hs.example"]}, state_key=channel)
    env.join(space)  # Bob of remote.example is in the space
    answer = done(hierarchy.federation_hierarchy(REMOTE, space, False))
    assert names(answer["children"]) == ["channel"]
    assert answer["children"][0]["allowed_room_ids"] == [space]
    assert done(hierarchy.federation_hierarchy(STRANGER, space, False))[
        "inaccessible_children"] == [channel]


def test_server_acl_hides_the_room(env: Env, hierarchy: SpaceHierarchyHandler) -> None:
    space = env.room(preset="public_chat", creation_content={"type": "m.space"})
    env.send(space, "m.room.server_acl", {"allow": ["*"], "deny": [REMOTE]}, state_key="")
    assert refused(hierarchy.federation_hierarchy(REMOTE, space, False)).status == 404


# Client -------------------------------------------------------------------------------


def test_client_hierarchy_is_depth_first_and_survives_loops(
        env: Env, hierarchy: SpaceHierarchyHandler) -> None:
    spaces = Spaces(env)
    rooms = done(hierarchy.client_hierarchy(CAROL, spaces.space, HierarchyQuery()))["rooms"]
    got = names(rooms)
    assert got[:3] == ["Guild", "welcome", "general"]
    # The sub-space's room follows the sub-space at once (depth first); each room once.
    assert got[got.index("Sub") + 1] == "deep"
    assert sorted(got) == sorted(["Guild", "welcome", "general", "Sub", "deep"])
    assert all("children_state" in r for r in rooms)
    # Alice may also see the private room.
    alice = names(done(hierarchy.client_hierarchy(ALICE, spaces.space, HierarchyQuery()))[
        "rooms"])
    assert "staff" in alice


def test_client_hierarchy_pages_and_depth(env: Env, hierarchy: SpaceHierarchyHandler) -> None:
    spaces = Spaces(env)
    first = done(hierarchy.client_hierarchy(CAROL, spaces.space, HierarchyQuery(limit=2)))
    assert names(first["rooms"]) == ["Guild", "welcome"]
    rest = done(hierarchy.client_hierarchy(CAROL, spaces.space,
                                           HierarchyQuery(limit=10, since=first["next_batch"])))
    assert len(rest["rooms"]) == 3 and "next_batch" not in rest
    error = refused(hierarchy.client_hierarchy(
        CAROL, spaces.space, HierarchyQuery(limit=2, max_depth=1, since=first["next_batch"])))
    assert (error.status, error.errcode) == (400, "M_INVALID_PARAM")
    error = refused(hierarchy.client_hierarchy(CAROL, spaces.space,
                                               HierarchyQuery(since="garbage")))
    assert (error.status, error.errcode) == (400, "M_INVALID_PARAM")
    shallow = done(hierarchy.client_hierarchy(CAROL, spaces.space, HierarchyQuery(max_depth=1)))
    assert "deep" not in names(shallow["rooms"])
    only_root = done(hierarchy.client_hierarchy(CAROL, spaces.space, HierarchyQuery(max_depth=0)))
    assert names(only_root["rooms"]) == ["Guild"]


def test_client_hierarchy_of_a_closed_room_is_forbidden(
        env: Env, hierarchy: SpaceHierarchyHandler) -> None:
    private = env.room(preset="private_chat")
    error = refused(hierarchy.client_hierarchy(CAROL, private, HierarchyQuery()))
    assert (error.status, error.errcode) == (403, "M_FORBIDDEN")


class ScriptedRemote:
    """Another server's `/hierarchy` answers, by room ID (None: it would not say)."""

    def __init__(self, answers: dict[str, dict | None]) -> None:  # type: ignore[type-arg]
        self.answers = answers
        self.asked: list[tuple[list[str], str]] = []

    async def hierarchy(self, servers: list[str], room_id: str, suggested_only: bool
                        ) -> dict | None:  # type: ignore[type-arg]
        self.asked.append((servers, room_id))
        return self.answers.get(room_id)


def test_remote_children_are_judged_like_local_ones(
        env: Env, hierarchy: SpaceHierarchyHandler) -> None:
    space = env.room(preset="public_chat", name="Guild", creation_content={"type": "m.space"})
    members_only = env.room(preset="private_chat", name="members")
    via = {"via": ["far.example"]}
    for order, child in (("a", "!open:far.example"), ("b", "!restricted:far.example"),
                         ("c", "!closed:far.example"), ("d", "!silent:far.example")):
        env.send(space, "m.space.child", {**via, "order": order}, state_key=child)

    def summary(room_id: str, name: str, join_rule: str, **extra: object) -> dict:  # type: ignore[type-arg]
        return {"room": {"room_id": room_id, "name": name, "join_rule": join_rule,
                         "children_state": [], **extra},
                "children": [], "inaccessible_children": []}

    remote = ScriptedRemote({
        "!open:far.example": summary("!open:far.example", "open", "public"),
        "!restricted:far.example": summary("!restricted:far.example", "restricted",
                                           "restricted", allowed_room_ids=[members_only]),
        "!closed:far.example": summary("!closed:far.example", "closed", "invite"),
        "!silent:far.example": None})
    hierarchy.remote = remote
    rooms = done(hierarchy.client_hierarchy(ALICE, space, HierarchyQuery()))["rooms"]
    # Alice is in the allowed room of the restricted one; nobody may see the closed one.
    assert names(rooms) == ["Guild", "open", "restricted"]
    assert all(servers == ["far.example"] for servers, _ in remote.asked)
    carol = done(hierarchy.client_hierarchy(CAROL, space, HierarchyQuery()))["rooms"]
    assert names(carol) == ["Guild", "open"]
