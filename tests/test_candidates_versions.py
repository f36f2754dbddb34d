"""The node's candidate selection reads what changed, not the user's history: the user's listing
holds the log index that last wrote each memory, so a memory analysed at that version is not read
again unless it is picked; one rewritten since is analysed again. A store written before the
listings held versions picks the same memories."""

from __future__ import annotations

from conftest import CountingStore

from memorose_dagster.log import keys
from memorose_dagster.node.candidates import Candidates
from memorose_dagster.records import Memory


def word(n: int) -> str:
    """A made-up word of its own for each n."""
    out = ""
    while True:
        n, digit = divmod(n, 26)
        out += chr(ord("a") + digit)
        if not n:
            return "zo" + out + "ka"


def chatter(i: int) -> str:
    """Memories that state no fact and share no words with another."""
    return f"Maya: {word(3 * i)} {word(3 * i + 1)} and {word(3 * i + 2)} were lovely."


def memory(i: int, content: str) -> dict:
    return Memory(id=f"l1_{i:04d}", tenant="default", user_id="u", stream_id="s",
                  content=content, source_event_ids=[f"e{i}"]).to_dict()


def stored(tmp_path) -> CountingStore:
    store = CountingStore(tmp_path / "db")
    store.apply([memory(i, chatter(i)) for i in range(40)]
                + [memory(40, "Maya: I live in Berlin now.")], 1)
    return store


def picks(candidates: Candidates, contents: list[str] = ()) -> list[str]:
    return [m["id"] for m in candidates.l1("default", "u", list(contents), [], [])]


def test_memories_analysed_at_their_version_are_not_read_again(tmp_path):
    store = stored(tmp_path)
    candidates = Candidates(store)
    assert picks(candidates) == ["l1_0040"]  # the one that states a fact
    assert sum(store.asked) == 41  # the first run analyses every memory
    store.asked.clear()
    assert picks(candidates) == ["l1_0040"]
    assert sum(store.asked) == 1  # then reads only what it picks
    store.asked.clear()
    assert picks(candidates, [chatter(6)]) == ["l1_0006", "l1_0040"]
    assert sum(store.asked) == 2


def test_a_memory_rewritten_since_is_analysed_again(tmp_path):
    store = stored(tmp_path)
    candidates = Candidates(store)
    picks(candidates)
    store.apply([memory(7, "Maya: I work as a nurse at the hospital.")], 2)
    store.asked.clear()
    assert picks(candidates) == ["l1_0007", "l1_0040"]
    assert store.asked == [1, 1]  # the rewritten one, read to be analysed; then the other pick


def test_a_store_without_versions_in_its_listings_picks_the_same(tmp_path):
    store = stored(tmp_path)
    prefix = keys.user_derived_prefix("l1", "default", "u")
    assert {len(version) for _, version in store.iter_prefix(prefix)} == {8}
    for key, _ in list(store.iter_prefix(prefix)):  # as an older version wrote them
        store.put_raw(key, b"")
    candidates = Candidates(store)
    for _ in range(2):
        assert picks(candidates, [chatter(9)]) == ["l1_0009", "l1_0040"]
    store.apply([memory(9, "Maya: I work as a nurse at the hospital.")], 2)
    assert picks(candidates) == ["l1_0009", "l1_0040"]  # the rewrite is seen by its bytes


def test_after_a_snapshot_install_the_picks_are_a_fresh_analysis(tmp_path):
    """A lagging replica analysed its memories, then installed a snapshot of one that went on
    (a memory rewritten, another added): it picks what a selection with nothing cached picks
    over the same store."""
    lagging, ahead = stored(tmp_path / "a"), stored(tmp_path / "b")
    candidates = Candidates(lagging)
    assert picks(candidates) == ["l1_0040"]
    ahead.apply([memory(7, "Maya: I work as a nurse at the hospital."),
                 memory(41, "Maya: I drive to work every day.")], 2)
    ahead.apply([memory(40, chatter(40))], 3)  # the Berlin memory no longer states a fact
    ahead.checkpoint(tmp_path / "snapshot")
    lagging.replace_with(tmp_path / "snapshot")
    expected = picks(Candidates(ahead), [chatter(3)])
    assert expected == ["l1_0003", "l1_0007", "l1_0041"]
    assert picks(candidates, [chatter(3)]) == expected
