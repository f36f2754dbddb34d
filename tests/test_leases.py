"""Derivation leases: the node's table, its admin routes, the pipeline's hold on them, and the
two run lanes of ``memorose up`` they make safe."""

from __future__ import annotations

import threading
import time

import dagster as dg
import pytest
import yaml
from conftest import wait_until
from test_pipeline_in_process import MEMORY_ASSETS, TODAY, ingest

import sensors
from memorose_client import MemoroseClient
from memorose_client.errors import MemoroseAPIError
from memorose_dagster.cli.up import DAGSTER_YAML
from memorose_dagster.node.leases import Leases
from memorose_dagster.pipeline import leasing
from memorose_dagster.pipeline.definitions import defs
from memorose_dagster.pipeline.in_process import InProcessClusterResource
from memorose_dagster.pipeline.resources import ModelResource
from sensors.lake import audit_job, lake_job

A, B, C = ("default", "a"), ("default", "b"), ("t2", "a")


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_lease_is_granted_for_all_users_or_none():
    leases = Leases()
    assert leases.acquire("run-1", [A, B], ttl=60) == {}
    assert leases.acquire("run-2", [B, C], ttl=60) == {B: "run-1"}
    assert leases.held() == {"run-1": [A, B]}  # C was not taken half-way
    assert leases.acquire("run-2", [C], ttl=60) == {}  # another tenant's "a" is another user
    assert leases.acquire("run-1", [A, B], ttl=60) == {}  # the owner renews its own
    assert leases.release("run-1") == 2
    assert leases.acquire("run-2", [B], ttl=60) == {}
    assert leases.release("nobody") == 0


def test_a_lease_not_renewed_expires():
    clock = Clock()
    leases = Leases(clock)
    leases.acquire("killed-run", [A], ttl=30)
    clock.now += 29
    assert leases.acquire("run-2", [A], ttl=30) == {A: "killed-run"}
    leases.acquire("killed-run", [A], ttl=30)  # renewed at 129: lasts until 159
    clock.now += 29
    assert leases.acquire("run-2", [A], ttl=30) == {A: "killed-run"}
    clock.now += 2
    assert leases.acquire("run-2", [A], ttl=30) == {}
    assert leases.held() == {"run-2": [A]}


def test_the_lease_routes(client):
    body = {"owner": "run-1:l1_memories", "users": [{"user_id": "a"}, {"user_id": "b"}]}
    ok = client.post("/api/v1/admin/leases", json=body)
    assert ok.status_code == 200 and ok.json()["users"] == 2
    taken = client.post("/api/v1/admin/leases", json={
        "owner": "run-2:l1_memories", "users": [{"user_id": "b"}, {"user_id": "c"}]})
    assert taken.status_code == 409
    error = taken.json()["error"]
    assert error["code"] == "lease_held" and error["held_count"] == 1
    assert error["held"] == [{"tenant": "default", "user_id": "b",
                              "owner": "run-1:l1_memories"}]
    assert client.get("/api/v1/admin/leases").json() == {"leases": [
        {"owner": "run-1:l1_memories", "users": [{"tenant": "default", "user_id": "a"},
                                                 {"tenant": "default", "user_id": "b"}]}]}
    released = client.delete("/api/v1/admin/leases/run-1:l1_memories")
    assert released.json() == {"owner": "run-1:l1_memories", "released": 2}
    assert client.get("/api/v1/admin/leases").json() == {"leases": []}


@pytest.mark.parametrize("body, field", [
    ({"users": [{"user_id": "a"}]}, "owner"),
    ({"owner": "r"}, "users"),
    ({"owner": "r", "users": []}, "users"),
    ({"owner": "r", "users": [{"tenant": "x"}]}, "users.0.user_id"),
    ({"owner": "r", "users": [{"user_id": "a\x1fb"}]}, "users.0.user_id"),
    ({"owner": "r", "users": [{"user_id": "a"}], "ttl_seconds": 0}, "ttl_seconds"),
    ({"owner": "r", "users": [{"user_id": "a"}], "ttl_seconds": 86_400}, "ttl_seconds"),
    ({"owner": "r", "users": [{"user_id": "a"}], "extra": 1}, "extra"),
])
def test_a_bad_lease_request_names_its_field(client, body, field):
    response = client.post("/api/v1/admin/leases", json=body)
    assert response.status_code == 400
    assert response.json()["error"]["field"] == field
    assert client.get("/api/v1/admin/leases").json() == {"leases": []}


def test_a_step_waits_for_its_users_and_holds_them_past_the_ttl(served_node, monkeypatch):
    monkeypatch.setattr(leasing, "TTL", 1.0)
    monkeypatch.setattr(leasing, "RENEW_EVERY", 0.2)
    first, second = MemoroseClient(served_node.url), MemoroseClient(served_node.url)
    order: list[str] = []
    waits: list[float] = []
    let_go = threading.Event()

    def holder() -> None:
        with leasing.held(first, "run-1:l1", [A, B]):
            order.append("first in")
            let_go.wait(timeout=30)
            order.append("first out")

    def waiter() -> None:
        with leasing.held(second, "run-2:l1", [B]) as waited:
            waits.append(waited)
            order.append("second in")

    threads = [threading.Thread(target=holder), threading.Thread(target=waiter)]
    threads[0].start()
    wait_until(lambda: order == ["first in"], what="the first step holds a and b")
    threads[1].start()
    time.sleep(2.5)  # the time itself is under test: more than twice the lease's 1 s TTL
    assert order == ["first in"]  # renewed, the first lease is still in force
    assert served_node.node.leases.held() == {"run-1:l1": [A, B]}
    let_go.set()
    for thread in threads:
        thread.join(timeout=30)
    assert order == ["first in", "first out", "second in"]
    assert waits[0] > 2.0
    assert served_node.node.leases.held() == {}


def test_a_lease_request_the_node_refuses_is_raised_not_retried(served_node):
    client = MemoroseClient(served_node.url)
    with pytest.raises(MemoroseAPIError) as refused, leasing.held(client, "bad\x1fowner", [A]):
        pass
    assert refused.value.status == 400 and refused.value.code == "invalid_input"


def test_a_run_derives_a_user_only_once_another_step_let_go_of_them(node, monkeypatch):
    ingest(node)
    node.leases.acquire("other-run:l1_memories", [("default", "user_1")], ttl=60)
    refused: list[str] = []
    acquire = node.leases.acquire

    def counting(owner, users, ttl):
        busy = acquire(owner, users, ttl)
        refused.extend([owner] if busy else [])
        return busy

    monkeypatch.setattr(node.leases, "acquire", counting)
    resources = {"cluster": InProcessClusterResource.for_node(node), "model": ModelResource()}
    done: list[dg.ExecuteInProcessResult] = []
    run = threading.Thread(target=lambda: done.append(dg.materialize(
        MEMORY_ASSETS, resources=resources, partition_key=TODAY)))
    run.start()
    wait_until(lambda: len(refused) >= 5, timeout=60, what="the L1 step asked and waited")
    assert all(owner.endswith(":l1_memories") for owner in refused)
    assert node.user_records("l1", "default", "user_1") == []
    node.leases.release("other-run:l1_memories")
    run.join(timeout=120)
    (result,) = done
    assert result.success
    assert node.user_records("l1", "default", "user_1")
    waits = {e.asset_key.path[0]: e.materialization.metadata["lease_wait_s"].value
             for e in result.get_asset_materialization_events()
             if "lease_wait_s" in e.materialization.metadata}
    assert set(waits) == {"l1_memories", "memory_graph", "l2_insights"}
    assert waits["l1_memories"] > 0.1  # it asked again and again
    assert max(waits["memory_graph"], waits["l2_insights"]) < leasing.FIRST_POLL  # never refused
    assert node.leases.held() == {}


def test_fresh_ranges_and_everything_else_queue_in_two_lanes_of_one_run():
    config = yaml.safe_load(DAGSTER_YAML)["run_coordinator"]["config"]
    assert config["max_concurrent_runs"] == 2
    assert {(limit["value"], limit["limit"]) for limit in config["tag_concurrency_limits"]
            if limit["key"] == "memorose/lane"} == {("fresh", 1), ("backlog", 1)}
    fresh = sensors.range_request(0, 5, TODAY, sensors.FRESH_PRIORITY)
    chunk = sensors.range_request(5, 9, TODAY, sensors.BACKLOG_PRIORITY)
    assert fresh.tags["memorose/lane"] == "fresh" and chunk.tags["memorose/lane"] == "backlog"
    for job in (sensors.memory_job, sensors.insights_refresh_job, sensors.memory_decay_job,
                lake_job, audit_job):
        assert defs.resolve_job_def(job.name).run_tags.get("memorose/lane") == "backlog", job.name
