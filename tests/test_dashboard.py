"""The dashboard: its pages and reads behind the API's keys, the retrieve ``explain``, and a
headless Chromium driving every page over a node with real memories, insights and a graph."""

from __future__ import annotations

import math
import os
import re
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit

import dagster as dg
import pytest
from conftest import make_settings, serve_over_http
from starlette.testclient import TestClient

from api import create_app
from assets import ALL_ASSETS
from memorose_dagster.ids import new_id
from memorose_dagster.memory.rank import Candidate, factors, rank
from memorose_dagster.node.node import Node
from memorose_dagster.pipeline import asset_keys as keys
from memorose_dagster.pipeline.in_process import InProcessClusterResource
from memorose_dagster.pipeline.resources import ModelResource
from memorose_dagster.records import Event

TENANT_KEY = "acme-dashboard-key-0123456789"
RIVAL_KEY = "rival-dashboard-key-0123456789"
ADMIN_KEY = "admin-dashboard-key-0123456789"
USER = "ana_and_ben"
DAY = 86_400.0
START = 1_767_225_600.0  # 2026-01-01 UTC
SESSIONS = [
    ["Ana: I live in Porto and love the old town", "Ben: Porto is lovely in spring",
     "Ana: We went camping near Sintra with my sister Maria",
     "Ben: I started working at Google as a designer"],
    ["Ana: Big news, I moved to Lisbon for work", "Ben: Lisbon has great food",
     "Ana: Maria and I went camping again, this time in Arrabida",
     "Ana: I adopted a dog called Biscuit"],
    ["Ana: Camping with Biscuit in Geres was muddy but fun", "Ben: I play guitar every evening",
     "Ana: Maria is visiting Lisbon next week", "Ben: My guitar teacher lives in Porto"],
    ["Ana: Biscuit loves the beach at Cascais", "Ben: I bought a new guitar yesterday",
     "Ana: I am planning more camping trips with Maria", "Ben: Google moved my team to Lisbon"],
]


def seed(node: Node, tenant: str = "acme") -> list[str]:
    """Four sessions of a conversation, derived by the real Dagster assets in this process."""
    events = [Event(event_id=new_id(), tenant=tenant,
                    user_id=USER, stream_id=f"session_{s + 1}", content=text,
                    timestamp=START + s * 7 * DAY + i * 60,
                    metadata={"session": s + 1, "turn": i + 1, "source": "chat"})
              for s, turns in enumerate(SESSIONS) for i, text in enumerate(turns)]
    node.ingest(events)
    assets = [a for a in ALL_ASSETS if a.key in keys.MEMORY_ASSETS]
    today = datetime.now(UTC).strftime("%Y-%m-%d")
    result = dg.materialize(assets, partition_key=today, resources={
        "cluster": InProcessClusterResource.for_node(node), "model": ModelResource()})
    assert result.success
    return [e.event_id for e in events]


@pytest.fixture(scope="module")
def keyed_node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Node]:
    from memorose_dagster.models.embedding import LocalMiniLM

    home = tmp_path_factory.mktemp("dashboard") / "node"
    settings = make_settings(home, api_keys={TENANT_KEY: "acme", RIVAL_KEY: "rival"},
                             admin_key=ADMIN_KEY)
    node = Node(settings, embedder=LocalMiniLM())
    node.wait_ready()
    seed(node)
    node.ingest([Event(event_id=new_id(), tenant="rival", user_id="rival_user",
                       stream_id="s", content="Rival secret plans", timestamp=START)])
    yield node
    node.close()


@pytest.fixture(scope="module")
def api(keyed_node: Node) -> Iterator[TestClient]:
    with TestClient(create_app(node=keyed_node)) as client:
        yield client


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def test_the_pages_are_served_with_a_strict_content_security_policy(api):
    page = api.get("/dashboard")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    policy = page.headers["content-security-policy"]
    assert policy.startswith("default-src 'self'") and "script-src 'self'" in policy
    assert "unsafe-inline" not in policy and "http" not in policy.split("connect-src")[0]
    for name in ("app.js", "dashboard.css"):
        asset = api.get(f"/dashboard/static/{name}")
        assert asset.status_code == 200 and asset.headers["content-security-policy"] == policy
    assert api.get("/dashboard/static/../dashboard.py").status_code == 404
    html = page.text + api.get("/dashboard/static/app.js").text
    assert "//cdn" not in html and "https://" not in html


def test_who_am_i_tells_the_pages_what_a_key_reaches(api):
    assert api.get("/dashboard/api/whoami").status_code == 401
    assert api.get("/dashboard/api/whoami", headers=bearer("wrong-key-000000000")).status_code \
        == 401
    me = api.get("/dashboard/api/whoami", headers=bearer(TENANT_KEY)).json()
    assert (me["role"], me["tenant"], me["open"]) == ("tenant", "acme", False)
    admin = api.get("/dashboard/api/whoami", headers=bearer(ADMIN_KEY)).json()
    assert (admin["role"], admin["tenant"]) == ("admin", None)
    assert me["dagster_url"] == "http://127.0.0.1:3000"


def test_users_and_memories_stay_inside_the_keys_tenant(api):
    assert api.get("/dashboard/api/users", headers=bearer(TENANT_KEY)).json() == {
        "users": [USER]}
    assert api.get("/dashboard/api/users", headers=bearer(RIVAL_KEY)).json() == {
        "users": ["rival_user"]}
    assert api.get(f"/dashboard/api/users/{USER}/memories",
                   headers=bearer(RIVAL_KEY)).status_code == 404
    assert api.get("/dashboard/api/users", headers=bearer(ADMIN_KEY)).status_code == 403
    live = api.get("/dashboard/api/recent", headers=bearer(RIVAL_KEY)).json()
    assert [i["content"] for i in live["items"]] == ["Rival secret plans"]


def test_memories_filter_by_stream_time_and_superseded(api):
    url, auth = f"/dashboard/api/users/{USER}/memories", bearer(TENANT_KEY)
    every = api.get(url, params={"limit": 200}, headers=auth).json()
    assert every["next_cursor"] is None and len(every["memories"]) >= 10
    old = api.get(url, params={"superseded": "yes"}, headers=auth).json()["memories"]
    assert len(old) == 1 and old[0]["content"].startswith("Ana: I live in Porto")
    live = api.get(url, params={"superseded": "no", "limit": 200}, headers=auth).json()
    assert len(live["memories"]) == len(every["memories"]) - 1
    second = api.get(url, params={"stream_id": "session_2", "limit": 200}, headers=auth).json()
    assert second["memories"] and {m["stream_id"] for m in second["memories"]} == {"session_2"}
    week3 = api.get(url, params={"since": START + 14 * DAY, "until": START + 21 * DAY,
                                 "limit": 200}, headers=auth).json()["memories"]
    assert "session_3" in {m["stream_id"] for m in week3}
    assert all(START + 14 * DAY <= (m.get("valid_from") or m["created_at"]) < START + 21 * DAY
               for m in week3)  # "yesterday", said in session 4, is valid in week 3
    pages, cursor = [], ""
    while cursor is not None:
        page = api.get(url, params={"limit": 3, "cursor": cursor}, headers=auth).json()
        pages += page["memories"]
        cursor = page["next_cursor"]
    assert [m["id"] for m in pages] == [m["id"] for m in every["memories"]]
    assert api.get(url, params={"superseded": "maybe"}, headers=auth).status_code == 400
    assert api.get(url, params={"since": "nan"}, headers=auth).status_code == 400


def test_the_public_memories_list_pages_through_the_users_listing(api):
    url, auth = f"/api/v1/users/{USER}/memories", bearer(TENANT_KEY)
    every = api.get(url, params={"limit": 500}, headers=auth).json()["memories"]
    pages, cursor = [], ""
    while cursor is not None:
        page = api.get(url, params={"limit": 4, "cursor": cursor}, headers=auth).json()
        pages += page["memories"]
        cursor = page["next_cursor"]
    assert [m["id"] for m in pages] == [m["id"] for m in every] == sorted(m["id"] for m in every)


def test_a_memorys_history_has_both_versions_and_its_provenance_chain(api):
    auth = bearer(TENANT_KEY)
    old = api.get(f"/dashboard/api/users/{USER}/memories", params={"superseded": "yes"},
                  headers=auth).json()["memories"][0]
    seen_from_old = api.get(f"/dashboard/api/memories/{old['id']}/history", headers=auth).json()
    assert len(seen_from_old["newer"]) == 1
    assert seen_from_old["newer"][0]["content"].startswith("Ana: Big news, I moved to Lisbon")
    new_id_ = seen_from_old["newer"][0]["id"]
    seen_from_new = api.get(f"/dashboard/api/memories/{new_id_}/history", headers=auth).json()
    assert [m["id"] for m in seen_from_new["older"]] == [old["id"]]
    assert seen_from_new["events"][0]["metadata"] == {"session": 2, "turn": 1, "source": "chat"}
    insights = api.get(f"/dashboard/api/users/{USER}/memories", params={"layer": "L2"},
                       headers=auth).json()["memories"]
    assert insights, "the seeded conversation makes at least one insight"
    chain = api.get(f"/dashboard/api/memories/{insights[0]['id']}/history", headers=auth).json()
    assert len(chain["members"]) >= 3 and all(m["provenance"] for m in chain["members"])
    assert {e["event_id"] for e in chain["events"]} \
        >= {p["event_id"] for m in chain["members"] for p in m["provenance"]}
    assert api.get(f"/dashboard/api/memories/{new_id_}/history",
                   headers=bearer(RIVAL_KEY)).status_code == 404


def test_retrieve_explains_each_score_when_asked(api):
    auth = bearer(TENANT_KEY)
    body = {"user_id": USER, "query": "where does Ana live", "top_k": 8}
    plain = api.post("/api/v1/retrieve", json=body, headers=auth).json()["results"]
    explained = api.post("/api/v1/retrieve", json={**body, "explain": True},
                         headers=auth).json()["results"]
    assert all("why" not in r for r in plain)
    assert [(r["id"], r["score"]) for r in explained] == [(r["id"], r["score"]) for r in plain]
    for result in explained:
        why = result["why"]
        assert set(why) == {"bm25", "text", "vector", "vector_part", "graph", "fused", "factors",
                            "score", "relevance"}
        assert math.isclose(why["fused"] * math.prod(why["factors"].values()), why["score"],
                            rel_tol=1e-9)
        assert math.isclose(round(why["score"], 6), result["score"], abs_tol=1e-6)
        if why["graph"] != "expanded":
            assert math.isclose(why["text"] + why["vector_part"], why["fused"], rel_tol=1e-9)
    old = next(r for r in explained if r.get("superseded_by"))
    assert old["why"]["factors"]["superseded"] < 1.0


def test_factors_mirror_the_ranking_for_every_kind_of_boost():
    records = [
        ("a", "L1", {"content": "Ana: I moved to Lisbon", "importance": 0.9,
                     "time_label": "7 May 2023", "valid_from": 1683417600.0}, True),
        ("b", "L0", {"content": "Ben: hello", "timestamp": 1683417600.0}, False),
        ("c", "L1", {"content": "Ana: old news", "superseded_by": "a", "importance": 0.2}, False),
        ("d", "L2", {"content": "Ana on camping: ...", "importance": 0.7}, True),
    ]
    for query in ("when did Ana move in May 2023", "what does Ben say", "camping"):
        candidates = [Candidate(rid, layer, record, 0.5 + i / 10, frozenset({rid}), linked)
                      for i, (rid, layer, record, linked) in enumerate(records)]
        fused = {c.id: c.score for c in candidates}
        expected = {c.id: fused[c.id] * math.prod(factors(c, query).values())
                    for c in candidates}
        for chosen in rank(candidates, query, 4):
            assert math.isclose(chosen.score, expected[chosen.id], rel_tol=1e-12)


# --- the browser: headless Chromium driven by Playwright over a served node ---------------------

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--no-first-run"]


def chromium_or_skip() -> Path:
    """Debian's chromium; installed with apt-get when missing and we are root, else a skip."""
    if CHROMIUM.exists():
        return CHROMIUM
    if os.geteuid() != 0:
        pytest.skip(f"{CHROMIUM} is missing and installing it needs root")
    done = subprocess.run(["apt-get", "install", "-y", "chromium"], capture_output=True,
                          text=True, timeout=900)
    if done.returncode != 0 or not CHROMIUM.exists():
        pytest.skip(f"apt-get install -y chromium failed: {done.stderr.strip()[-500:]}")
    return CHROMIUM


@pytest.fixture(scope="module")
def served(keyed_node: Node) -> Iterator[str]:
    yield from serve_over_http(keyed_node)


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    executable = chromium_or_skip()
    sync_api = pytest.importorskip("playwright.sync_api",
                                   reason="pip install playwright (the test extras)")
    with sync_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(executable),
                                              args=CHROMIUM_FLAGS)
        yield launched
        launched.close()


@pytest.fixture
def shots(tmp_path: Path) -> Path:
    """Where screenshots go: MEMOROSE_DASHBOARD_SHOTS (docs/ for the README), else tmp."""
    where = Path(os.environ.get("MEMOROSE_DASHBOARD_SHOTS") or tmp_path)
    where.mkdir(parents=True, exist_ok=True)
    return where


def new_page(browser, requests: list[str], responses: list[tuple[str, int]]):
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    page = context.new_page()
    page.on("request", lambda request: requests.append(request.url))
    page.on("response", lambda response: responses.append((response.url, response.status)))
    page.set_default_timeout(15_000)
    return context, page


def test_a_wrong_key_sees_nothing(browser, served):
    requests: list[str] = []
    responses: list[tuple[str, int]] = []
    context, page = new_page(browser, requests, responses)
    page.goto(f"{served}/dashboard")
    page.fill("#key", "not-a-key-of-this-node-000")
    page.click("form.signin button[type=submit]")
    page.wait_for_selector("form.signin .notice.error")
    assert "Wrong key" in page.inner_text("form.signin")
    page.goto(f"{served}/dashboard#/memories")  # a page asked for directly: still the sign-in
    page.wait_for_selector("form.signin")
    assert page.locator("#memory-list").count() == 0
    assert USER not in page.content() and "Porto" not in page.content()
    data = [(u, s) for u, s in responses if "/api/" in u]
    assert data and all(s == 401 for _, s in data), data
    assert all(u.startswith(served) for u in requests), requests
    context.close()


def test_the_dashboard_in_a_browser(browser, served, keyed_node, shots):
    from playwright.sync_api import expect

    requests: list[str] = []
    responses: list[tuple[str, int]] = []
    context, page = new_page(browser, requests, responses)
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error"
            and not msg.text.startswith("Failed to load resource") else None)  # 401/404 asked

    # Sign in: the key is kept for this session, and every page gets it.
    page.goto(f"{served}/dashboard")
    page.fill("#key", TENANT_KEY)
    page.click("form.signin button[type=submit]")
    page.wait_for_selector("#memory-list tbody tr")
    assert page.inner_text("#who").startswith("tenant acme")
    rows = page.locator("#memory-list tbody tr").count()
    assert rows >= 10
    page.screenshot(path=str(shots / "dashboard-memories.png"))

    # Filter to superseded memories, open one: its history names the newer version.
    page.select_option("select[name=superseded]", "yes")
    page.click("#memory-filters button[type=submit]")
    expect(page.locator("#memory-list tbody tr")).to_have_count(1)  # (CSP: no eval'd waits)
    page.click("#memory-list tbody tr a")
    page.wait_for_selector("#supersede-history ol.history")
    assert "I moved to Lisbon" in page.inner_text("#supersede-history")
    assert '"session":1' in page.inner_text("#provenance")

    # An insight's page: the provenance chain L2 -> L1 -> L0 with the events' metadata.
    insight = keyed_node.user_records("l2", "acme", USER)[0]
    page.goto(f"{served}/dashboard#/memory/{insight['id']}")
    page.wait_for_selector("#provenance ul.members li")
    assert page.locator("#provenance ul.members li").count() >= 3
    assert '"source":"chat"' in page.inner_text("#provenance table")
    page.screenshot(path=str(shots / "dashboard-memory.png"), full_page=True)

    # Graph: the whole graph, then one entity, expanded to its neighbours.
    page.goto(f"{served}/dashboard#/graph")
    page.wait_for_selector("#graph-status[data-settled=yes]")
    total = int(page.inner_text("#graph-status").split()[0])
    assert total >= 5
    page.screenshot(path=str(shots / "dashboard-graph.png"))
    page.fill("#graph-entity", "Lisbon")
    page.fill("input[name=hops]", "0")
    page.click("#graph-form button[type=submit]")
    expect(page.locator("#graph-status")).to_have_text(re.compile(r"^1 entities"))
    page.wait_for_selector("#graph-status[data-settled=yes]")
    box = page.locator("#graph-canvas").bounding_box()
    page.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    page.wait_for_selector("#graph-selected")
    assert page.inner_text("#graph-selected") == "Lisbon"
    page.click("#graph-expand")
    expect(page.locator("#graph-status")).not_to_have_text(re.compile(r"^1 entities"))
    assert int(page.inner_text("#graph-status").split()[0]) > 1
    assert page.locator("#graph-side ul.edge-memories li a").count() >= 1

    # Search playground: a retrieve, each result with its score and why.
    page.goto(f"{served}/dashboard#/search")
    page.fill("#search-query", "where does Ana live now")
    page.click("#search-run")
    page.wait_for_selector("#search-results tbody tr")
    assert "fused" in page.inner_text("#search-results tbody tr td.why")
    page.screenshot(path=str(shots / "dashboard-search.png"))

    # Live: a new event appears without a reload.
    page.goto(f"{served}/dashboard#/live")
    page.wait_for_selector("#live-list li")
    keyed_node.ingest([Event(event_id=new_id(), tenant="acme", user_id=USER,
                             stream_id="session_5", content="Ana: we booked a trip to Madeira",
                             timestamp=START + 35 * DAY)])
    page.wait_for_selector("#live-list li.fresh", timeout=10_000)
    assert "Madeira" in page.inner_text("#live-list li.fresh")
    page.screenshot(path=str(shots / "dashboard-live.png"))

    # Cluster: the admin key is asked for, then status refreshes; no audit route: no panel.
    page.goto(f"{served}/dashboard#/cluster")
    page.wait_for_selector("#admin-key")
    page.fill("#admin-key", ADMIN_KEY)
    page.click("#admin-form button[type=submit]")
    page.wait_for_selector("#cluster-members tbody tr")
    assert "leader" in page.inner_text("#cluster-self")
    page.wait_for_selector("#pipeline-runs-box p, #pipeline-runs-box table")
    assert page.locator("#audit").is_hidden()
    page.screenshot(path=str(shots / "dashboard-cluster.png"))

    # Forget: preview by query, tick one memory, confirm; it is gone.
    page.goto(f"{served}/dashboard#/memories")
    page.fill("#forget-query", "Biscuit loves the beach at Cascais")
    page.click("#forget-form button[type=submit]")
    page.wait_for_selector("#forget-candidates li")
    target = page.get_attribute("#forget-candidates input >> nth=0", "data-id")
    page.check("#forget-candidates input >> nth=0")
    page.screenshot(path=str(shots / "dashboard-forget.png"))
    page.click("#forget-confirm")
    page.wait_for_selector("#forget-report")
    assert target in page.inner_text("#forget-report")
    assert keyed_node.get_record("acme", "L1", target) is None

    assert errors == []
    outside = [u for u in requests if urlsplit(u).hostname != "127.0.0.1"]
    assert outside == [], outside
    context.close()
