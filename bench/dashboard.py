"""Server time of the calls the dashboard's pages make, with 100k memories for one user.

One node (``python -m memorose_dagster.cli serve``) on free 127.0.0.1 ports in a throw-away
data directory, with a tenant key and the admin key. Seeded over HTTP: 1,000 events for one
user (``POST /api/v1/events/batch``), then ``--memories`` L1 memories (2% superseded, spread
over a year and ten streams) and a graph of ``--entities`` entities with co-occurrence and
mention edges, committed through ``POST /api/v1/admin/commit`` as the pipeline would. Then each
call a page makes is timed ``--repeat`` times on keep-alive connections (client side, loopback:
server time plus well under a millisecond), against ``GET /health`` in the same run as the
floor. With ``--browser``, headless Chromium also times the graph page's layout of the whole
graph (canvas, capped force layout).

    python bench/dashboard.py                 # 100k memories, 3,000 entities
    python bench/dashboard.py --memories 10000 --repeat 10   # smoke run
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from memorose_dagster.ids import stable_id

HOST = "127.0.0.1"
TENANT_KEY = "bench-dashboard-tenant-key-0001"
ADMIN_KEY = "bench-dashboard-admin-key-00001"
USER = "bench_user"
BATCH = 2000
BUDGET_MS = 300.0
START = 1_735_689_600.0  # 2025-01-01 UTC
YEAR = 365 * 86_400.0
WORDS = ("hiking lisbon porto guitar camping dog biscuit maria google designer beach sintra "
         "coffee running marathon python rust garden tomatoes piano concert paris tokyo").split()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def start_node(home: Path) -> tuple[subprocess.Popen[bytes], str]:
    port, raft_port = free_port(), free_port()
    env = {**os.environ, "MEMOROSE_API_KEYS": f"{TENANT_KEY}:acme",
           "MEMOROSE_ADMIN_KEY": ADMIN_KEY}
    log = (home.parent / "node.log").open("wb")
    proc = subprocess.Popen([sys.executable, "-m", "memorose_dagster.cli", "serve", "--host", HOST,
                             "--port", str(port), "--raft-port", str(raft_port),
                             "--data-dir", str(home)], stdout=log, stderr=subprocess.STDOUT,
                            env=env)
    url = f"http://{HOST}:{port}"
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"node exited: {(home.parent / 'node.log').read_text()[-2000:]}")
        try:
            if httpx.get(url + "/health", timeout=1).status_code == 200:
                return proc, url
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise SystemExit("node did not answer /health in 90 s")


def sentence(rng: random.Random, i: int) -> str:
    return f"Memory {i}: the user talked about " + " and ".join(rng.sample(WORDS, 3))


def seed(tenant: httpx.Client, admin: httpx.Client, memories: int, entities: int,
         rng: random.Random) -> dict[str, Any]:
    event_ids: list[str] = []
    for b in range(2):
        batch = [{"user_id": USER, "stream_id": f"stream_{i % 10}", "content": sentence(rng, i),
                  "timestamp": START + (b * 500 + i) * YEAR / 1000,
                  "metadata": {"source": "bench", "n": b * 500 + i}} for i in range(500)]
        reply = tenant.post("/api/v1/events/batch", json={"events": batch})
        reply.raise_for_status()
        event_ids += reply.json()["event_ids"]
    ids = [stable_id("l1", USER, str(i)) for i in range(memories)]
    started = time.perf_counter()
    for lo in range(0, memories, BATCH):
        records = []
        for i in range(lo, min(lo + BATCH, memories)):
            when = START + rng.random() * YEAR
            records.append({
                "kind": "l1", "id": ids[i], "tenant": "acme", "user_id": USER,
                "stream_id": f"stream_{i % 10}", "content": sentence(rng, i),
                "source_event_ids": [event_ids[i % len(event_ids)]],
                "importance": round(rng.random(), 3), "keywords": rng.sample(WORDS, 2),
                "valid_from": when, "created_at": when,
                "superseded_by": ids[i + 1] if i % 50 == 0 and i + 1 < memories else None})
        admin.post("/api/v1/admin/commit", json={"records": records}).raise_for_status()
    seeded_s = time.perf_counter() - started
    graph = []
    names = [f"entity {n}" for n in range(entities)]
    eids = [stable_id("ent", USER, name) for name in names]
    members = {e: rng.sample(range(memories), 3) for e in range(entities)}
    for e in range(entities):
        graph.append({"kind": "entity", "id": eids[e], "tenant": "acme", "user_id": USER,
                      "name": names[e], "entity_type": rng.choice(["person", "place", "thing"]),
                      "memory_ids": sorted(ids[m] for m in members[e])})
        for m in members[e]:
            graph.append({"kind": "relation", "id": stable_id("rel", eids[e], ids[m]),
                          "tenant": "acme", "user_id": USER, "source": eids[e],
                          "target": ids[m], "relation": "mentioned_in"})
        for other in {rng.randrange(entities) for _ in range(2)} - {e}:
            graph.append({"kind": "relation", "id": stable_id("rel", eids[e], eids[other]),
                          "tenant": "acme", "user_id": USER, "source": eids[e],
                          "target": eids[other], "relation": "co_occurs",
                          "weight": float(rng.randint(1, 4))})
    for lo in range(0, len(graph), BATCH):
        admin.post("/api/v1/admin/commit", json={"records": graph[lo:lo + BATCH]}
                   ).raise_for_status()
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        status = admin.get("/api/v1/cluster/status").json()
        if status["indexed_index"] >= status["applied_index"]:
            break
        time.sleep(0.5)
    return {"ids": ids, "entity": names[0], "seed_s": seeded_s,
            "graph_records": len(graph), "applied": status["applied_index"]}


def timed(call: Callable[[], httpx.Response], repeat: int) -> list[float]:
    for _ in range(2):
        call().raise_for_status()
    out = []
    for _ in range(repeat):
        started = time.perf_counter()
        reply = call()
        out.append((time.perf_counter() - started) * 1000)
        reply.raise_for_status()
    return out


def browser_layout(url: str) -> str:
    """Milliseconds from opening the graph page to the layout settled, in headless Chromium."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        return "playwright not installed"
    if not Path("/usr/bin/chromium").exists():
        return "no /usr/bin/chromium"
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
             "--disable-component-update", "--no-first-run"]
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=flags)
        page = browser.new_page(viewport={"width": 1280, "height": 800})
        page.goto(f"{url}/dashboard")
        page.fill("#key", TENANT_KEY)
        page.click("form.signin button[type=submit]")
        page.wait_for_selector("#memory-list tbody tr", timeout=60_000)
        started = time.perf_counter()
        page.goto(f"{url}/dashboard#/graph")
        page.wait_for_selector("#graph-status[data-settled=yes]", timeout=120_000)
        took = (time.perf_counter() - started) * 1000
        text = page.inner_text("#graph-status")
        browser.close()
    return f"{took:.0f} ms for {text}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--memories", type=int, default=100_000)
    parser.add_argument("--entities", type=int, default=3000)
    parser.add_argument("--repeat", type=int, default=30)
    parser.add_argument("--browser", action="store_true", help="time the graph layout too")
    args = parser.parse_args()
    rng = random.Random(1234)
    work = Path(tempfile.mkdtemp(prefix="memorose-bench-dashboard-"))
    proc, url = start_node(work / "node")
    try:
        tenant = httpx.Client(base_url=url, timeout=120,
                              headers={"Authorization": f"Bearer {TENANT_KEY}"})
        admin = httpx.Client(base_url=url, timeout=120,
                             headers={"Authorization": f"Bearer {ADMIN_KEY}"})
        seeded = seed(tenant, admin, args.memories, args.entities, rng)
        ids = seeded["ids"]
        deep = ids and sorted(ids)[int(len(ids) * 0.9)]
        mine = f"/dashboard/api/users/{USER}/memories"
        ask = {"user_id": USER, "query": "hiking in lisbon with maria", "top_k": 10}
        calls: list[tuple[str, str, Callable[[], httpx.Response]]] = [
            ("baseline", "GET /health", lambda: tenant.get("/health")),
            ("shell", "GET /dashboard", lambda: tenant.get("/dashboard")),
            ("shell", "GET /dashboard/api/whoami", lambda: tenant.get("/dashboard/api/whoami")),
            ("memories", "users", lambda: tenant.get("/dashboard/api/users")),
            ("memories", "first page (50)", lambda: tenant.get(mine)),
            ("memories", "page 90% deep", lambda: tenant.get(mine, params={"cursor": deep})),
            ("memories", "superseded only (sparse)",
             lambda: tenant.get(mine, params={"superseded": "yes"})),
            ("memories", "one month, importance >= 0.5", lambda: tenant.get(mine, params={
                "since": START + 0.5 * YEAR, "until": START + 0.5 * YEAR + 30 * 86_400,
                "min_importance": 0.5})),
            ("memories", "public list, first page",
             lambda: tenant.get(f"/api/v1/users/{USER}/memories")),
            ("memories", "public list, 90% deep",
             lambda: tenant.get(f"/api/v1/users/{USER}/memories", params={"cursor": deep})),
            ("memory", "history + provenance (L1)",
             lambda: tenant.get(f"/dashboard/api/memories/{ids[1]}/history")),
            ("search", "retrieve top 10",
             lambda: tenant.post("/api/v1/retrieve", json=ask)),
            ("search", "retrieve top 10, explain",
             lambda: tenant.post("/api/v1/retrieve", json={**ask, "explain": True})),
            ("search", "context 1000 tokens", lambda: tenant.post("/api/v1/context", json={
                "user_id": USER, "query": ask["query"], "max_tokens": 1000})),
            ("graph", f"whole graph ({args.entities} entities)",
             lambda: tenant.get(f"/api/v1/users/{USER}/graph")),
            ("graph", f"whole graph as the page asks (mentions=false, {args.entities})",
             lambda: tenant.get(f"/api/v1/users/{USER}/graph", params={"mentions": "false"})),
            ("graph", "one entity, 1 hop (expand)", lambda: tenant.get(
                f"/api/v1/users/{USER}/graph", params={"entity": seeded["entity"], "hops": 1})),
            ("live", "recent, first look", lambda: tenant.get("/dashboard/api/recent")),
            ("live", "recent, poll at the tip", lambda: tenant.get(
                "/dashboard/api/recent", params={"after": seeded["applied"]})),
            ("cluster", "cluster status", lambda: admin.get("/api/v1/cluster/status")),
        ]
        rows = []
        for page, name, call in calls:
            took = timed(call, args.repeat)
            took.sort()
            rows.append((page, name, statistics.median(took),
                         took[max(0, int(len(took) * 0.95) - 1)], took[-1]))
        layout = browser_layout(url) if args.browser else "not run (--browser)"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
        shutil.rmtree(work, ignore_errors=True)
    print(f"\n{args.memories:,} L1 memories for one user ({seeded['seed_s']:.1f} s to commit), "
          f"{args.entities:,} entities ({seeded['graph_records']:,} graph records), "
          f"{args.repeat} calls each, client side on loopback\n")
    print("| page | call | p50 ms | p95 ms | max ms | p95 under 300 ms |")
    print("| --- | --- | --- | --- | --- | --- |")
    for page, name, p50, p95, worst in rows:
        print(f"| {page} | {name} | {p50:.1f} | {p95:.1f} | {worst:.1f} | "
              f"{'yes' if p95 < BUDGET_MS else 'NO'} |")
    print(f"\nGraph page in headless Chromium, open to settled layout: {layout}")


if __name__ == "__main__":
    main()
