"""Export a tenant from one node, import it into a fresh node: the same records (digest), the
same top-10 results, no consolidation; reruns add nothing; damaged archives are refused."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from conftest import served
from test_audit import OTHER
from test_lake import derive, ingest
from test_pipeline_in_process import FACTS

from memorose_client import MemoroseClient
from memorose_dagster.cli import main
from memorose_dagster.lake.archive import ArchiveError
from memorose_dagster.lake.in_process import LakeNodeClient
from memorose_dagster.lake.transfer import import_archive, tenant_digest
from memorose_dagster.node.node import Node

QUERIES = ["where does Maria work", "dog", "hiking on Sunday", "Lisbon", "music orchestra",
           "what language is Tom learning", "Kyoto trip with his sister"]


@pytest.fixture
def fresh(tmp_path, embedder):
    yield from served(tmp_path / "fresh", embedder)


@pytest.fixture
def source(served_node, tmp_path):
    node = served_node.node
    ingest(node, FACTS)
    ingest(node, OTHER, user="user_2")
    derive(node, tmp_path / "lake")
    mine = sorted(node.user_records("l1", "default", "user_1"), key=lambda m: m["id"])
    node.forgetter.forget("default", "L1", mine[0]["id"])
    node.record_access("default", node.retrieve("default", "user_1", "Biscuit the dog", 3))
    node.access.flush()
    assert node.user_records("access", "default", "user_1")
    return served_node


def top10(node: Node) -> list[list[tuple[str, str]]]:
    # Tantivy's BM25 statistics count deleted documents until segments merge, and the source
    # deleted some (forgets, re-derivations): rank both on indexes built afresh from RocksDB.
    node.indexer.reset()
    assert node.indexer.wait_for(node.applied_index, 30)
    return [[(r["id"], r["layer"]) for r in node.retrieve("default", user, q, 10)]
            for user in ("user_1", "user_2") for q in QUERIES]


def test_export_then_import_gives_the_same_records_and_results(source, fresh, tmp_path):
    archive_dir, (target, target_url) = tmp_path / "archive", fresh
    assert main(["export", "--url", source.url, "--tenant", "default", str(archive_dir)]) == 0
    manifest = json.loads((archive_dir / "manifest.json").read_text())
    assert manifest["version"] == 1 and manifest["tables"]["tombstones"]["rows"] >= 1
    assert manifest["tables"]["vectors"]["rows"] > manifest["tables"]["events"]["rows"]
    expected = tenant_digest(LakeNodeClient(source.node), "default")
    assert main(["import", "--url", target_url, str(archive_dir)]) == 0
    assert tenant_digest(LakeNodeClient(target), "default") == expected
    assert top10(target) == top10(source.node)
    assert main(["import", "--url", target_url, str(archive_dir)]) == 0  # a rerun adds nothing
    assert tenant_digest(LakeNodeClient(target), "default") == expected


def test_an_interrupted_import_is_rerun_without_duplicates(source, fresh, tmp_path):
    archive_dir, (target, target_url) = tmp_path / "archive", fresh
    assert main(["export", "--url", source.url, "--tenant", "default", str(archive_dir)]) == 0

    class Interrupted(MemoroseClient):
        commits = 0

        def commit(self, records):
            Interrupted.commits += 1
            if Interrupted.commits == 3:
                raise ConnectionError("the import was cut off")
            return super().commit(records)

    with Interrupted(target_url) as client, pytest.raises(ConnectionError):
        import_archive(client, archive_dir, quiet=True)
    with MemoroseClient(target_url) as client:
        import_archive(client, archive_dir, quiet=True)
    assert tenant_digest(LakeNodeClient(target), "default") == \
        tenant_digest(LakeNodeClient(source.node), "default")


def test_a_user_export_holds_that_user_only(source, tmp_path):
    archive_dir = tmp_path / "user2"
    assert main(["export", "--url", source.url, "--tenant", "default", "--user", "user_2",
                 str(archive_dir)]) == 0
    import polars as pl
    users = set(pl.read_parquet(archive_dir / "memories.parquet")["user_id"])
    assert users == {"user_2"}
    assert pl.read_parquet(archive_dir / "events.parquet").height == len(OTHER)


def _damaged(src: Path, dst: Path, how: str) -> Path:
    shutil.copytree(src, dst)
    manifest = json.loads((dst / "manifest.json").read_text())
    events = dst / "events.parquet"
    if how == "newer":
        manifest["version"] = 99
        (dst / "manifest.json").write_text(json.dumps(manifest))
    elif how == "truncated":
        events.write_bytes(events.read_bytes()[:-100])
    else:  # same size, one byte changed
        data = bytearray(events.read_bytes())
        data[len(data) // 2] ^= 0xFF
        events.write_bytes(bytes(data))
    return dst


@pytest.mark.parametrize(("how", "message"), [
    ("newer", "version 99 is newer"), ("truncated", "truncated"),
    ("flipped", "checksum mismatch")])
def test_a_damaged_or_newer_archive_is_refused(source, fresh, tmp_path, how, message):
    good = tmp_path / "archive"
    assert main(["export", "--url", source.url, "--tenant", "default", str(good)]) == 0
    bad = _damaged(good, tmp_path / how, how)
    target, target_url = fresh
    with MemoroseClient(target_url) as client, pytest.raises(ArchiveError, match=message):
        import_archive(client, bad, quiet=True)
    assert target.users() == []  # nothing was imported
    assert main(["import", "--url", target_url, str(bad)]) == 2
