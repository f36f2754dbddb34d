"""``memorose audit`` (table, JSON, HTML with charts), ``memorose sql`` and
``GET /api/v1/admin/audit`` against a node served over HTTP."""

from __future__ import annotations

import json
import re
import shutil
import struct
import subprocess

import httpx
import pytest
from test_audit import OTHER, commit, memories
from test_lake import derive, ingest
from test_pipeline_in_process import FACTS

from memorose_dagster.cli import main

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture
def audited(served_node, tmp_path, monkeypatch):
    ingest(served_node.node, FACTS)
    ingest(served_node.node, OTHER, user="user_2")
    derive(served_node.node, tmp_path / "lake")
    monkeypatch.setenv("MEMOROSE_LAKE", str(tmp_path / "lake"))
    return served_node


def run(capsys, *argv) -> tuple[int, str]:
    code = main(list(argv))
    return code, capsys.readouterr().out


def test_audit_prints_a_table_and_fails_on_a_blocking_fault(audited, tmp_path, capsys):
    code, out = run(capsys, "audit", "--url", audited.url, "--refresh")
    assert code == 0, out
    assert re.search(r"^integrity\s+yes\s+ok\s+0", out, re.M)
    assert "all blocking audits passed" in out
    a, b = memories(audited.node)[:2]
    commit(audited.node, {**a, "superseded_by": b["id"]}, {**b, "superseded_by": a["id"]})
    code, out = run(capsys, "audit", "--url", audited.url, "--refresh", "--json")
    report = json.loads(out)
    assert code == 1 and not report["passed"]
    assert {x["name"] for x in report["audits"] if not x["passed"]} == {"supersede"}


def test_the_api_serves_the_report(audited, capsys):
    assert run(capsys, "audit", "--url", audited.url, "--refresh")[0] == 0
    body = httpx.get(audited.url + "/api/v1/admin/audit", timeout=30).json()
    assert body["passed"] and body["nodes"][0]["caught_up"]
    assert {a["name"] for a in body["audits"]} >= {"provenance", "isolation", "consistency"}


def test_sql_runs_duckdb_over_the_lake(audited, capsys):
    assert run(capsys, "audit", "--url", audited.url, "--refresh")[0] == 0
    code, out = run(capsys, "sql", "SELECT user_id, count(*) AS n FROM events "
                    "GROUP BY user_id ORDER BY user_id", "--json")
    assert code == 0
    assert json.loads(out) == [{"user_id": "user_1", "n": len(FACTS)},
                               {"user_id": "user_2", "n": len(OTHER)}]
    code, out = run(capsys, "sql", "SELECT count(*) AS memories FROM memories")
    assert out.splitlines()[0].strip() == "memories" and out.splitlines()[2].strip().isdigit()


def _png_colours(path) -> int:
    """How many distinct byte values the compressed image data holds: a blank page compresses
    to a few hundred bytes of nearly one value."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])
    assert (width, height) == (1400, 1000)
    return len(set(data[33:]))


def test_the_html_report_is_self_contained_and_draws_its_charts(audited, tmp_path, capsys):
    page = tmp_path / "audit.html"
    code, _ = run(capsys, "audit", "--url", audited.url, "--refresh", "--html", str(page))
    text = page.read_text()
    assert code == 0
    assert not re.search(r"https?://", text), "the report must not load anything"
    assert text.count("<svg") == 4 and text.count("<rect") > 10
    if CHROMIUM is None:
        pytest.skip("no chromium on this machine (apt-get install -y chromium): "
                    "the page is checked as text only")
    shot = tmp_path / "audit.png"
    subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu",
                    "--disable-background-networking", "--disable-component-update",
                    "--no-first-run", f"--screenshot={shot}", "--window-size=1400,1000",
                    page.as_uri()], check=True, capture_output=True, timeout=120)
    assert shot.stat().st_size > 20_000 and _png_colours(shot) > 200
