"""Export a tenant from a node with API keys and import it into another tenant of a fresh one:
everything lands in the target tenant (events through its key's ingest, the rest with their
tenant rewritten) with the same records and top-10 results; a key of another tenant, or the
admin key alone, is refused before anything is imported."""

from __future__ import annotations

import pytest
from conftest import served
from test_audit import OTHER
from test_export import QUERIES
from test_lake import derive
from test_pipeline_in_process import FACTS

from memorose_client import MemoroseClient
from memorose_dagster.cli import main
from memorose_dagster.lake.in_process import LakeNodeClient
from memorose_dagster.lake.transfer import tenant_digest
from memorose_dagster.node.node import Node

ADMIN_A, KEY_A = "admin-of-a-0123456789abcdef", "key-acme-0123456789abcdef"
ADMIN_B, KEY_B, KEY_OTHER = ("admin-of-b-0123456789abcdef", "key-globex-0123456789abcdef",
                             "key-initech-0123456789abcdef")


@pytest.fixture
def acme(tmp_path, embedder):
    yield from served(tmp_path / "a", embedder, api_keys={KEY_A: "acme"}, admin_key=ADMIN_A)


@pytest.fixture
def globex(tmp_path, embedder):
    yield from served(tmp_path / "b", embedder, admin_key=ADMIN_B,
                     api_keys={KEY_B: "globex", KEY_OTHER: "initech"})


def top10(node: Node, tenant: str) -> list[list[tuple[str, str]]]:
    node.indexer.reset()  # BM25 statistics as built afresh (see test_export.top10)
    assert node.indexer.wait_for(node.applied_index, 30)
    return [[(r["id"], r["layer"]) for r in node.retrieve(tenant, user, q, 10)]
            for user in ("user_1", "user_2") for q in QUERIES]


def test_a_tenant_is_imported_into_another_tenant(acme, globex, tmp_path, monkeypatch, capsys):
    (source, source_url), (target, target_url) = acme, globex
    with MemoroseClient(source_url, api_key=KEY_A) as client:
        for user, facts in (("user_1", FACTS), ("user_2", OTHER)):
            client.ingest_batch([{"user_id": user, "stream_id": "chat", "content": c}
                                 for c in facts])
    derive(source, tmp_path / "lake")
    mine = sorted(source.user_records("l1", "acme", "user_1"), key=lambda m: m["id"])
    assert mine
    source.forgetter.forget("acme", "L1", mine[0]["id"])
    source.record_access("acme", source.retrieve("acme", "user_1", "Biscuit the dog", 3))
    source.access.flush()
    archive_dir = tmp_path / "archive"
    monkeypatch.setenv("MEMOROSE_ADMIN_KEY", ADMIN_A)
    assert main(["export", "--url", source_url, "--tenant", "acme", str(archive_dir)]) == 0

    monkeypatch.setenv("MEMOROSE_ADMIN_KEY", ADMIN_B)
    capsys.readouterr()
    before = target.applied_index
    args = ["import", "--url", target_url, "--tenant", "globex", str(archive_dir)]
    assert main(args) == 2  # no MEMOROSE_API_KEY: only the admin key, which cannot ingest
    assert "not the admin key" in capsys.readouterr().err
    monkeypatch.setenv("MEMOROSE_API_KEY", KEY_OTHER)
    assert main(args) == 2
    assert "reaches tenant 'initech', not 'globex'" in capsys.readouterr().err
    assert target.users() == [] and target.applied_index == before  # nothing was sent

    monkeypatch.setenv("MEMOROSE_API_KEY", KEY_B)
    assert main(args) == 0
    assert {t for t, _ in target.users()} == {"globex"}
    target_lake = LakeNodeClient(target)
    for kind in ("event", "l1", "vector", "tombstone", "access", "entity"):
        assert {r["tenant"] for r in target_lake.lake_records(kind)["records"]} == {"globex"}
    expected = tenant_digest(LakeNodeClient(source), "acme")
    assert tenant_digest(target_lake, "globex") == expected
    assert top10(target, "globex") == top10(source, "acme")
    # The target's own pipeline over the imported events derives the ids that were imported
    # (derived ids leave the tenant out): it updates them in place, it adds nothing.
    # (Both derive again: a rerun also mends what the forget left, such as a chain the
    # forgotten memory ended, on the source as on the target.)
    derive(source, tmp_path / "lake")
    derive(target, tmp_path / "target-lake")
    assert tenant_digest(target_lake, "globex") == tenant_digest(LakeNodeClient(source), "acme")
    assert top10(target, "globex") == top10(source, "acme")
    # The tenant's key reads them (last: a read over HTTP counts an access).
    with MemoroseClient(target_url, api_key=KEY_B) as client:
        assert client.retrieve("user_1", "where does Maria work", top_k=3)
