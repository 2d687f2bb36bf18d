"""The SDK shows each stream frame to its observer (`SyncLoop.on_frame`), which
the client tests use to check every frame against schemas/frames/
(helpers.check_frame, failed on by conftest)."""

from __future__ import annotations

from typing import Any

from tests.client.helpers import BAD_FRAMES, check_frame, new_client, run, wait_for
from tests.harness import HomeserverProcess


def test_every_frame_reaches_the_observer_before_the_model(client_server: HomeserverProcess,
                                                           unique: str) -> None:
    async def scenario() -> None:
        sender = await new_client(client_server, f"{unique}s")
        listener = await new_client(client_server, f"{unique}l")
        frames: list[dict[str, Any]] = []
        try:
            room_id = await sender.create_room(name="frames", invite=[listener.user_id])
            await listener.join(room_id)
            listener.sync.on_frame = lambda frame: (check_frame(frame), frames.append(frame))
            await listener.start()
            event_id = await sender.send_text(room_id, "framed")
            await wait_for(lambda: any(e.get("event_id") == event_id
                                       for e in listener.rooms[room_id].timeline),
                           what="the message")
        finally:
            await sender.close()
            await listener.close()
        carried = [e["event_id"] for f in frames
                   for e in f["data"]["rooms"]["join"].get(room_id, {}).get("timeline", {})
                   .get("events", []) if "event_id" in e]
        assert event_id in carried and all(f["type"] == "sync" for f in frames)

    run(scenario())


def test_a_malformed_frame_is_recorded() -> None:
    """The check conftest relies on does catch a broken frame."""
    first = len(BAD_FRAMES)
    check_frame({"type": "sync", "next_batch": "s1", "data": {"next_batch": "s1"}})
    check_frame({"id": "a", "result": {"event_id": 5}})
    recorded = BAD_FRAMES[first:]
    del BAD_FRAMES[first:]  # expected here: not this test's failure
    assert len(recorded) == 2, recorded
