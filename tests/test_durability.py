"""A node killed with SIGKILL right after acknowledging events still has every one on restart."""

from __future__ import annotations

import threading

import httpx
from conftest import start_live_node


def test_sigkill_after_ack_loses_nothing(tmp_path):
    node = start_live_node(tmp_path / "n")
    acked: list[str] = []
    lock = threading.Lock()

    def single_writer(worker: int) -> None:
        with httpx.Client(base_url=node.url, timeout=10) as http:
            for i in range(40):
                body = {"user_id": "dur", "stream_id": f"w{worker}",
                        "content": f"durable fact {worker} {i} zebra", "metadata": {"i": i}}
                response = http.post("/api/v1/events", json=body)
                assert response.status_code == 201
                with lock:
                    acked.append(response.json()["event_id"])

    with httpx.Client(base_url=node.url, timeout=30) as http:
        batch = [{"user_id": "dur", "stream_id": "b", "content": f"batched zebra fact {i}"}
                 for i in range(500)]
        response = http.post("/api/v1/events/batch", json={"events": batch})
        assert response.status_code == 201
        acked.extend(response.json()["event_ids"])
    threads = [threading.Thread(target=single_writer, args=(w,)) for w in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    node.kill()  # no shutdown hook runs: what was acknowledged must already be safe

    restarted = start_live_node(node.home, port=node.port, raft_port=node.raft_port)
    try:
        with httpx.Client(base_url=restarted.url, timeout=30) as http:
            for event_id in acked:
                response = http.get(f"/api/v1/events/{event_id}")
                assert response.status_code == 200, event_id
            found = http.post("/api/v1/retrieve", json={
                "user_id": "dur", "query": "durable zebra", "top_k": 100}).json()["results"]
            ids = {r["id"] for r in found}
            assert len(ids) == 100 and ids <= set(acked)
            singles = http.post("/api/v1/retrieve", json={
                "user_id": "dur", "query": "durable fact", "stream_id": "w3", "top_k": 100})
            assert len(singles.json()["results"]) == 40
    finally:
        restarted.process.terminate()
        restarted.process.wait(timeout=20)
