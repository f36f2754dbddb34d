"""Export a tenant from a three-replica cluster and import it into another tenant of a second
three-replica cluster, both with API keys, through every replica's URL: each target replica
holds the same RocksDB digest, the tenant's records are the source's, and every replica of
either cluster answers the same top 10."""

from __future__ import annotations

from contextlib import AbstractContextManager
from pathlib import Path

import pytest
from conftest import three_replicas
from test_export import QUERIES

from memorose_client import MemoroseClient
from memorose_dagster.cli import main
from memorose_dagster.cli.local_cluster import LocalCluster
from memorose_dagster.lake.transfer import tenant_digest
from memorose_dagster.records import Access, Memory, Tombstone, Vector

ADMIN = "admin-of-both-0123456789abcdef"
KEY_A, KEY_B = "key-acme-0123456789abcdef", "key-globex-0123456789abcdef"
FACTS = {"user_1": ["Maria works at a bakery in Lisbon", "Maria and I adopted a dog Biscuit",
                    "We go hiking in Sintra every Sunday", "I play the violin in an orchestra"],
         "user_2": ["Tom is learning Japanese at night", "Tom visited Kyoto with his sister Ana",
                    "Tom plays the cello in Porto"]}


def cluster(root: Path, keys: str) -> AbstractContextManager[LocalCluster]:
    return three_replicas(root, env={"MEMOROSE_API_KEYS": keys, "MEMOROSE_ADMIN_KEY": ADMIN})


def seed(urls: list[str], embedder) -> None:
    """Events through the tenant key; memories with their vectors, an access count and a
    tombstone through the admin commit (what the pipeline would have written)."""
    with MemoroseClient(urls, api_key=KEY_A) as tenant, \
            MemoroseClient(urls, api_key=ADMIN) as admin:
        records = []
        for user, facts in FACTS.items():
            ids = tenant.ingest_batch([{"user_id": user, "stream_id": "chat", "content": c}
                                       for c in facts])
            vectors = embedder.embed(facts)
            for event_id, content, values in zip(ids, facts, vectors, strict=True):
                mid = f"l1_{event_id}"
                records += [Memory(id=mid, tenant="acme", user_id=user, stream_id="chat",
                                   content=content, source_event_ids=[event_id]).to_dict(),
                            Vector(tenant="acme", record_id=mid, layer="L1",
                                   model=embedder.name, values=values.tobytes()).to_dict()]
        records += [Access(tenant="acme", user_id="user_1", record_id=records[0]["id"],
                           target_kind="l1", count=3, last_access=1.0).to_dict(),
                    Tombstone(tenant="acme", target_kind="l1", target_id="l1_gone",
                              reason="forgotten").to_dict()]
        admin.commit(records)


def top10(urls: list[str], key: str) -> list[list[list[tuple[str, str]]]]:
    """Per replica, the top 10 of every query (each reflecting every acknowledged write)."""
    out = []
    for url in urls:
        with MemoroseClient(url, api_key=key) as client:
            out.append([[(r["id"], r["layer"]) for r in client.retrieve(
                user, q, 10, consistent=True)] for user in FACTS for q in QUERIES])
    return out


def test_a_cluster_tenant_is_imported_into_another_cluster(tmp_path, embedder, monkeypatch):
    monkeypatch.setenv("MEMOROSE_ADMIN_KEY", ADMIN)  # LocalCluster.digests and the CLI
    archive_dir = tmp_path / "archive"
    with cluster(tmp_path / "a", f"{KEY_A}:acme") as source:
        seed(source.urls, embedder)
        source.digests()  # every replica applied all of it
        expected_top = top10(source.urls, KEY_A)
        assert expected_top[0][0] and expected_top.count(expected_top[0]) == 3
        with MemoroseClient(source.urls, api_key=ADMIN) as admin:
            expected = tenant_digest(admin, "acme")
        assert main(["export", "--url", ",".join(source.urls), "--tenant", "acme",
                     str(archive_dir)]) == 0
    monkeypatch.setenv("MEMOROSE_API_KEY", KEY_B)
    with cluster(tmp_path / "b", f"{KEY_B}:globex") as target:
        assert main(["import", "--url", ",".join(target.urls), "--tenant", "globex",
                     str(archive_dir)]) == 0
        digests = target.digests()
        assert len({d["digest"] for d in digests.values()}) == 1 and len(digests) == 3
        with MemoroseClient(target.urls, api_key=ADMIN) as admin:
            assert tenant_digest(admin, "globex") == expected
            assert {u["tenant"] for u in admin.request("GET", "/api/v1/admin/users")["users"]} \
                == {"globex"}
        assert top10(target.urls, KEY_B) == expected_top


@pytest.fixture(autouse=True)
def _no_tenant_key(monkeypatch):
    monkeypatch.delenv("MEMOROSE_API_KEY", raising=False)
