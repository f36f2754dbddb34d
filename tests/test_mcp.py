"""The MCP server driven by the official SDK's own client: over streamable HTTP at /mcp on a
node served by uvicorn, and over stdio through ``memorose mcp`` against that node."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import anyio
import httpx
import httpx2
import pytest
from conftest import make_settings
from mcp import Client, MCPError, StdioServerParameters
from mcp.client.streamable_http import streamable_http_client
from test_client_api import derive

from memorose_client import MemoroseClient
from memorose_dagster.node.node import Node

ROOT = Path(__file__).resolve().parent.parent
KEY_A, KEY_B = "ka-0123456789abcdef", "kb-0123456789abcdef"
ADMIN = "admin-0123456789abcdef"
TURNS = ["I moved to Lisbon with Maria last spring",
         "Maria and I adopted a dog called Biscuit in Lisbon",
         "We go sailing on the Tagus with Biscuit every Sunday",
         "Maria started a new job at Google"]


@pytest.fixture
def node(tmp_path: Path, embedder) -> Node:
    """Tenants A and B, and the admin key (``served_node`` serves this node)."""
    n = Node(make_settings(tmp_path / "node", api_keys={KEY_A: "A", KEY_B: "B"},
                           admin_key=ADMIN), embedder=embedder)
    n.wait_ready()
    yield n
    n.close()


def over_http(url: str, key: str | None) -> Client:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    transport = streamable_http_client(url + "/mcp", http_client=httpx2.AsyncClient(
        headers=headers, timeout=60))
    return Client(transport, cache=None)


def over_stdio(url: str, key: str) -> Client:
    env = {"MEMOROSE_URL": url, "MEMOROSE_API_KEY": key,
           "PYTHONPATH": os.environ.get("PYTHONPATH", str(ROOT))}
    return Client(StdioServerParameters(command=sys.executable, cwd=ROOT, env=env,
                                        args=["-m", "memorose_dagster.cli", "mcp"]), cache=None)


async def call(client: Client, tool: str, **arguments: Any) -> Any:
    result = await client.call_tool(tool, arguments)
    assert not result.is_error, result.content[0].text
    return json.loads(result.content[0].text)


async def refused(client: Client, tool: str, **arguments: Any) -> dict[str, Any]:
    """A tool error: its text is the HTTP API's error body (and the status)."""
    result = await client.call_tool(tool, arguments)
    assert result.is_error
    body = json.loads(result.content[0].text)
    return {"status": body["status"], **body["error"]}


async def remember_recall_forget(client: Client, node: Node, node_url: str) -> None:
    tools = {t.name for t in (await client.list_tools()).tools}
    assert {"remember", "recall", "context", "graph", "forget_preview",
            "forget_confirm"} <= tools
    events = [{"user_id": "maria", "stream_id": "chat", "content": c, "metadata": {"turn": i}}
              for i, c in enumerate(TURNS)]
    ids = (await call(client, "remember", events=events))["event_ids"]
    assert len(ids) == 4

    found = await call(client, "recall", user_id="maria", query="sailing on the Tagus", top_k=3)
    best = found["results"][0]
    assert best["id"] == ids[2] and best["provenance"][0]["metadata"] == {"turn": 2}
    assert best["provenance"][0]["event_id"] == ids[2]

    await anyio.to_thread.run_sync(derive, node)  # L1 memories, the graph, L2
    packed = await call(client, "context", user_id="maria", query="Where does Maria work?",
                        max_tokens=120)
    assert "Google" in packed["context"] and 0 < packed["tokens"] <= 120
    assert all(m["provenance"] for m in packed["memories"])
    graph = await call(client, "graph", user_id="maria", entity="Google", hops=1)
    assert "Google" in {e["name"] for e in graph["entities"]}
    recent = await client.read_resource("memorose://users/maria/memories")
    memories = json.loads(recent.contents[0].text)["memories"]
    assert memories and all(m["layer"] == "L1" and m["provenance"] for m in memories)

    bad = await refused(client, "recall", user_id="maria", query="x", top_k=1000)
    assert bad["status"] == 400 and bad["code"] == "invalid_input" and bad["field"] == "top_k"
    rest = await anyio.to_thread.run_sync(lambda: httpx.post(
        node_url + "/api/v1/retrieve", json={"user_id": "maria", "query": "x", "top_k": 1000},
        headers={"Authorization": f"Bearer {KEY_A}"}))
    assert {"status": rest.status_code, **rest.json()["error"]} == bad  # the same error
    empty = await refused(client, "remember", events=[{"user_id": "maria", "stream_id": "chat",
                                                       "content": ""}])
    assert empty["code"] == "invalid_input" and empty["field"] == "events.0.content"
    unknown = await refused(client, "graph", user_id="maria", entity="Mars")
    assert unknown["status"] == 404 and unknown["field"] == "entity"

    preview = await call(client, "forget_preview", user_id="maria", query="sailing Tagus",
                         top_k=2)
    doomed = [c["id"] for c in preview["candidates"]]
    assert doomed and preview["token"]
    again = await call(client, "recall", user_id="maria", query="sailing Tagus", top_k=10)
    assert set(doomed) <= {r["id"] for r in again["results"]}  # a preview removes nothing
    done = await call(client, "forget_confirm", token=preview["token"], ids=doomed)
    assert {f["id"] for f in done["forgotten"]} == set(doomed)
    after = await call(client, "recall", user_id="maria", query="sailing Tagus", top_k=10)
    assert not set(doomed) & {r["id"] for r in after["results"]}


async def other_tenant_sees_nothing(client: Client) -> None:
    nobody = await refused(client, "recall", user_id="maria", query="Lisbon")
    assert nobody["status"] == 404  # tenant A's user does not exist for tenant B
    assert (await refused(client, "graph", user_id="maria"))["status"] == 404
    with pytest.raises(MCPError):
        await client.read_resource("memorose://users/maria/memories")
    await call(client, "remember", events=[{"user_id": "maria", "stream_id": "b",
                                            "content": "Tenant B's own Maria likes tea"}])
    mine = await call(client, "recall", user_id="maria", query="Lisbon sailing tea", top_k=10)
    assert [r["content"] for r in mine["results"]] == ["Tenant B's own Maria likes tea"]


def test_mcp_over_streamable_http(served_node):
    url, node = served_node.url, served_node.node

    async def scenario() -> None:
        async with over_http(url, KEY_A) as client:
            await remember_recall_forget(client, node, url)
        async with over_http(url, KEY_B) as client:
            await other_tenant_sees_nothing(client)
        async with over_http(url, ADMIN) as client:  # the admin key reaches no tenant data
            assert (await refused(client, "recall", user_id="maria", query="x"))["status"] == 403
        reader = MemoroseClient(url, api_key=ADMIN).create_key("A", read_only=True).secret
        async with over_http(url, reader) as client:
            assert (await call(client, "recall", user_id="maria", query="Lisbon"))["results"]
            no = await refused(client, "remember", events=[
                {"user_id": "maria", "stream_id": "chat", "content": "read-only"}])
            assert no["status"] == 403 and no["code"] == "forbidden"
            assert (await refused(client, "forget_preview", user_id="maria",
                                  query="Lisbon"))["status"] == 403

    anyio.run(scenario)
    hello = {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}
    for headers in ({}, {"Authorization": "Bearer not-a-key-0123456789"}):
        denied = httpx.post(url + "/mcp", json=hello, headers=headers)  # before any MCP
        assert denied.status_code == 401 and denied.json()["error"]["code"] == "unauthorized"


def test_mcp_over_stdio(served_node):
    url, node = served_node.url, served_node.node

    async def scenario() -> None:
        async with over_stdio(url, KEY_A) as client:
            await remember_recall_forget(client, node, url)
        async with over_stdio(url, KEY_B) as client:
            await other_tenant_sees_nothing(client)

    anyio.run(scenario)
