"""The node keeps the log index of each user's last event: a chunk of a backlog asks it which of
its users have events in a later chunk (and leaves their graph and insights to it)."""

from __future__ import annotations

from conftest import CountingStore

from memorose_dagster.ids import new_ids
from memorose_dagster.records import Event


def events_of(user: str, n: int, start_ms: int) -> list[dict]:
    return [Event(event_id=eid, tenant="default", user_id=user, stream_id="s",
                  content=f"turn {i} of {user}", timestamp=float(i)).to_dict()
            for i, eid in enumerate(new_ids(n, start_ms))]


def test_each_command_moves_the_last_event_of_its_users(tmp_path):
    store = CountingStore(tmp_path / "db")
    ann, bob = events_of("ann", 3, 1_700_000_000_000), events_of("bob", 2, 1_700_000_100_000)
    store.apply(ann + bob, 1)
    store.apply(events_of("ann", 1, 1_700_000_200_000), 2)
    store.apply(bob, 3)  # a resend: nothing new for bob
    asked = [("default", "ann"), ("default", "bob"), ("default", "nobody"), ("other", "ann")]
    store.asked.clear()
    assert store.last_events(asked) == [2, 1, None, None]
    assert store.asked == [4]  # one multi-get


def test_the_route_answers_per_user_and_refuses_a_bad_body(client):
    body = {"events": [{"user_id": "ann", "stream_id": "s", "content": "We adopted a dog"}]}
    index = client.post("/api/v1/events/batch", json=body).json()["log_index"]
    got = client.post("/api/v1/admin/users/last-events", json={"users": [
        {"user_id": "ann"}, {"tenant": "default", "user_id": "bob"}]})
    assert got.status_code == 200
    assert got.json() == {"users": [
        {"tenant": "default", "user_id": "ann", "log_index": index},
        {"tenant": "default", "user_id": "bob", "log_index": None}]}
    for bad in ({}, {"users": []}, {"users": [{"tenant": "default"}]}, {"users": "ann"}):
        refused = client.post("/api/v1/admin/users/last-events", json=bad)
        assert refused.status_code == 400 and refused.json()["error"]["field"], bad
