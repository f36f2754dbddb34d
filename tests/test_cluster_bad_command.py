"""A command no replica can apply, committed in a three-member Raft group (three nodes in this
process on loopback ports), is skipped alike everywhere: all three keep committing, with equal
digests."""

from __future__ import annotations

import secrets

from conftest import free_port, wait_until
from starlette.testclient import TestClient

from api import create_app
from memorose_dagster.ids import new_id
from memorose_dagster.log import keys
from memorose_dagster.node.node import Node
from memorose_dagster.records import Event
from memorose_dagster.settings import Settings


def test_a_garbage_command_leaves_three_replicas_committing_alike(tmp_path, embedder):
    ports = [(free_port(), free_port()) for _ in range(3)]
    members = [f"127.0.0.1:{raft}" for _, raft in ports]
    secret = secrets.token_urlsafe(24)
    nodes: list[Node] = []
    try:
        for i, (port, raft) in enumerate(ports):
            settings = Settings(home=tmp_path / f"n{i}", port=port, raft_port=raft,
                                peers=tuple(m for m in members if m != members[i]),
                                cluster_secret=secret, commit_timeout=5.0)
            nodes.append(Node(settings, embedder=embedder))
        for node in nodes:
            node.wait_ready(timeout=15)
        leader = wait_until(lambda: next((n for n in nodes if n.status()["role"] == "leader"),
                                         None), timeout=15, what="a leader")

        outcome = leader.log.apply_batch(b"\xc1garbage", sync=True, timeout=5)
        assert outcome["rejected"]
        for i, node in enumerate(nodes):  # every member commits (followers forward)
            node.ingest([Event(event_id=new_id(), tenant="default", user_id="u",
                               stream_id="s", content=f"after the garbage {i}",
                               timestamp=1.0)])

        digests = []
        for node in nodes:
            with TestClient(create_app(node=node)) as client:
                response = client.get("/api/v1/admin/digest")
            assert response.status_code == 200, response.text
            digests.append(response.json())
            assert node.store.get(keys.rejected(outcome["log_index"])) is not None
        assert len({d["digest"] for d in digests}) == 1, digests
        assert len({d["applied_index"] for d in digests}) == 1, digests
    finally:
        for node in nodes:
            node.close()
