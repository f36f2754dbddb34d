"""Every method of the Python client, blocking and asyncio, against a node served over real
HTTP with tenant keys, a read-only key and the admin key; memories derived by the pipeline."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
import pytest
from conftest import make_settings

from assets import ALL_ASSETS
from memorose_client import (
    AsyncMemoroseClient,
    Context,
    ForgetPreview,
    Graph,
    MemoroseAPIError,
    MemoroseClient,
    Memory,
    Result,
)
from memorose_dagster.node.node import Node
from memorose_dagster.pipeline import asset_keys as keys
from memorose_dagster.pipeline.in_process import InProcessClusterResource
from memorose_dagster.pipeline.resources import ModelResource

KEY_A, KEY_B = "ka-0123456789abcdef", "kb-0123456789abcdef"
ADMIN = "admin-0123456789abcdef"
FACTS = ["I moved to Lisbon with Maria last spring",
         "Maria and I adopted a dog called Biscuit in Lisbon",
         "We hike near Lisbon with Biscuit every Sunday", "Maria started a new job at Google"]


@pytest.fixture
def node(tmp_path: Path, embedder) -> Node:
    """Two tenants' keys and the admin key (``served_node`` serves this node)."""
    n = Node(make_settings(tmp_path / "node", api_keys={KEY_A: "A", KEY_B: "B"},
                           admin_key=ADMIN), embedder=embedder)
    n.wait_ready()
    yield n
    n.close()


def derive(node: Node) -> None:
    """Run the memory pipeline in this process: L1, graph and L2 from the events so far."""
    today = datetime.now(UTC).strftime("%Y-%m-%d")
    assets = [a for a in ALL_ASSETS if a.key in keys.MEMORY_ASSETS]
    resources = {"cluster": InProcessClusterResource.for_node(node), "model": ModelResource()}
    assert dg.materialize(assets, resources=resources, partition_key=today).success


def seed(client: MemoroseClient, node: Node) -> list[str]:
    ids = client.ingest_batch([{"user_id": "maria", "stream_id": "chat", "content": c,
                                "metadata": {"turn": i}} for i, c in enumerate(FACTS)])
    derive(node)
    return ids


def test_every_method_blocking(served_node):
    url, node = served_node.url, served_node.node
    client, other = MemoroseClient(url, api_key=KEY_A), MemoroseClient(url, api_key=KEY_B)
    admin = MemoroseClient([url], api_key=ADMIN)
    one = client.ingest("maria", "notes", "Maria is allergic to peanuts",
                        metadata={"source": "app"})
    ids = seed(client, node)

    event = client.get_event(one["event_id"], consistent=True)
    assert event.content == "Maria is allergic to peanuts" and event["metadata"] == {
        "source": "app"}
    hits = client.retrieve("maria", "peanut allergy", top_k=5, layers=["L0"])
    assert isinstance(hits[0], Result) and hits[0].id == one["event_id"]
    assert hits[0].provenance[0].metadata == {"source": "app"}
    assert hits[0]["provenance"][0]["event_id"] == one["event_id"]  # still reads like JSON

    packed = client.context("maria", "Where does Maria live?", max_tokens=200)
    assert isinstance(packed, Context) and 0 < packed.tokens <= 200
    assert "Lisbon" in packed.context
    assert all(m.provenance for m in packed.memories)

    graph = client.graph("maria", entity="Google", hops=1)
    assert isinstance(graph, Graph) and "Google" in {e.name for e in graph.entities}
    assert {r.relation for r in graph.relations} <= {"co_occurs", "mentioned_in"}

    memories = list(client.memories("maria", page_size=2))
    assert len(memories) >= 3 and all(isinstance(m, Memory) for m in memories)
    assert len({m.id for m in memories}) == len(memories)  # pages do not overlap
    assert {p.event_id for m in memories for p in m.provenance} <= {*ids, one["event_id"]}
    fetched = client.get_memory(memories[0].id)
    assert fetched.content == memories[0].content and fetched.layer == "L1"

    preview = client.forget("maria", "Biscuit the dog", top_k=3, layers=["L1"])
    assert isinstance(preview, ForgetPreview) and preview.candidates and preview.token
    forgotten = client.forget_confirm(preview, ids=[preview.ids[0]])
    assert [f["id"] for f in forgotten.forgotten] == [preview.ids[0]]
    with pytest.raises(MemoroseAPIError) as gone:
        client.get_memory(preview.ids[0])
    assert gone.value.status == 404

    survivor = next(m for m in memories if m.id != preview.ids[0])
    assert client.delete_memory(survivor.id).forgotten == [{"id": survivor.id, "kind": "l1"}]
    assert client.delete_event(one["event_id"]).forgotten[0]["id"] == one["event_id"]
    with pytest.raises(MemoroseAPIError):
        client.get_event(one["event_id"])

    with pytest.raises(MemoroseAPIError) as elsewhere:  # tenant B does not see A's user
        other.retrieve("maria", "Lisbon")
    assert elsewhere.value.status == 404

    status = admin.status()
    assert status.role == "leader" and status.applied_index >= status.indexed_index > 0
    assert admin.health()["status"] == "ok" and admin.request("GET", "/health")["role"]
    assert ("A", "maria") in admin.users()
    assert admin.read_log(0, limit=5, kinds=["event"])["entries"]
    assert len(admin.list_records("event", "maria", tenant="A", streams={"chat"})) == len(ids)
    assert admin.events_between(0, 2**47)["events"]
    assert admin.derivations("l1")
    made = admin.create_key("A", read_only=True, name="dashboard")
    assert made.secret and made.tenant == "A" and made.read_only
    reader = MemoroseClient(url, api_key=made.secret)
    assert reader.retrieve("maria", "Lisbon", top_k=3)
    with pytest.raises(MemoroseAPIError) as refused:
        reader.ingest("maria", "chat", "read-only keys cannot write")
    assert refused.value.status == 403
    assert made.key_id in {k.key_id for k in admin.list_keys()}
    assert admin.revoke_key(made.key_id).revoked
    with pytest.raises(MemoroseAPIError) as revoked:
        reader.retrieve("maria", "Lisbon")
    assert revoked.value.status == 401
    with pytest.raises(MemoroseAPIError) as bad:
        client.context("maria", "x", max_tokens=1)
    assert bad.value.code == "invalid_input" and bad.value.field == "max_tokens"


def test_every_method_async(served_node):
    url, node = served_node.url, served_node.node
    seed(MemoroseClient(url, api_key=KEY_A), node)
    asyncio.run(_async_round(url))


async def _async_round(url: str) -> None:
    async with AsyncMemoroseClient(["http://127.0.0.1:9", url], api_key=KEY_A) as client:
        one = await client.ingest("maria", "notes", "Maria collects vinyl records")
        [two] = await client.ingest_batch([{"user_id": "maria", "stream_id": "notes",
                                            "content": "Maria plays the cello"}])
        assert (await client.get_event(two)).content == "Maria plays the cello"
        hits = await client.retrieve("maria", "vinyl records", top_k=3, consistent=True)
        assert hits[0].id == one["event_id"] and hits[0].provenance
        packed = await client.context("maria", "Where does Maria work?", max_tokens=100)
        assert "Google" in packed.context
        graph = await client.graph("maria")
        assert {"Lisbon", "Google"} <= {e.name for e in graph.entities}
        memories = [m async for m in client.memories("maria", page_size=3)]
        assert len(memories) >= 3
        assert (await client.get_memory(memories[0].id)).id == memories[0].id
        preview = await client.forget_preview("maria", "hiking on Sunday", top_k=2)
        forgotten = await client.forget_confirm(preview.token, preview.ids)
        assert {f["id"] for f in forgotten.forgotten} == set(preview.ids)
        live = [m async for m in client.memories("maria")]
        victim = next(m for m in live if m.id not in preview.ids)
        assert (await client.delete_memory(victim.id)).forgotten[0]["id"] == victim.id
        assert (await client.delete_event(two)).forgotten[0]["id"] == two
        with pytest.raises(MemoroseAPIError) as wrong:
            await client.status()  # a tenant key does not reach cluster status
        assert wrong.value.status == 403
        assert (await client.health())["status"] == "ok"
    async with AsyncMemoroseClient(url, api_key=ADMIN) as admin:
        assert (await admin.status()).role == "leader"
        made = await admin.create_key("B", name="async")
        assert made.key_id in {k.key_id for k in await admin.list_keys()}
        assert (await admin.revoke_key(made.key_id)).revoked
