"""A read of some of a user's streams fetches only their events: the user's event listing names
each event's stream, so the consolidator's context read costs the streams it touches, not the
user's whole history. A store written before (listing values empty) still answers the same."""

from __future__ import annotations

from conftest import CountingStore

from memorose_dagster.ids import new_ids
from memorose_dagster.log import keys
from memorose_dagster.records import Event, Tombstone


def events_of(streams: list[str], user: str = "u") -> list[dict]:
    ids = new_ids(len(streams), 1_700_000_000_000)
    return [Event(event_id=eid, tenant="default", user_id=user, stream_id=stream,
                  content=f"turn {i} of {stream}", timestamp=float(i)).to_dict()
            for i, (eid, stream) in enumerate(zip(ids, streams, strict=True))]


def test_a_stream_read_fetches_only_that_streams_events(tmp_path):
    store = CountingStore(tmp_path / "db")
    events = events_of(["a", "b", "c", "a", "b", "c", "a", "c", "c"])
    store.apply(events + events_of(["b"], user="v"), 1)
    store.asked.clear()
    got = store.derived_for_user("event", "default", "u", {"b"})
    assert [e["event_id"] for e in got] == [e["event_id"] for e in events if e["stream_id"] == "b"]
    assert store.asked == [2]  # the two events of b, not the user's nine
    both = store.derived_for_user("event", "default", "u", {"a", "c"})
    assert [e["stream_id"] for e in both] == ["a", "c", "a", "c", "a", "c", "c"]
    assert len(store.derived_for_user("event", "default", "u")) == 9


def test_a_listing_written_before_streams_were_named_still_reads_right(tmp_path):
    store = CountingStore(tmp_path / "db")
    events = events_of(["a", "b", "a", "b"])
    store.apply(events, 1)
    prefix = keys.user_events_prefix("default", "u")
    listing = [key for key, _ in store.iter_prefix(prefix)]
    assert {value for _, value in store.iter_prefix(prefix)} == {b"a", b"b"}
    for key in listing:  # as an older version wrote them
        store.put_raw(key, b"")
    got = store.derived_for_user("event", "default", "u", {"a"})
    assert [e["event_id"] for e in got] == [e["event_id"] for e in events[::2]]


def test_a_forgotten_event_leaves_its_streams_listing(tmp_path):
    store = CountingStore(tmp_path / "db")
    events = events_of(["a", "a", "b"])
    store.apply(events, 1)
    gone = Tombstone(tenant="default", target_kind="event", target_id=events[0]["event_id"],
                     reason="forgotten").to_dict()
    store.apply([gone], 2)
    got = store.derived_for_user("event", "default", "u", {"a"})
    assert [e["event_id"] for e in got] == [events[1]["event_id"]]
