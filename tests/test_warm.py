"""What `memorose up`'s Dagster processes load once instead of at every tick or run
(`memorose_dagster/cli/warm.py`): Dagster's migration scripts and the entity model."""

from __future__ import annotations

import dagster as dg
import dagster._core.storage.sql as dagster_sql
import pytest
from alembic.script import ScriptDirectory

from memorose_dagster.cli import code_server, warm


@pytest.fixture
def scripts_read(monkeypatch):
    """Reads of a migration script directory, counted; the patch undone after the test."""
    reads = []
    original = ScriptDirectory.from_config.__func__

    def counting(cls, config, *args, **kwargs):
        reads.append(config.get_main_option("script_location"))
        return original(cls, config, *args, **kwargs)

    monkeypatch.setattr(ScriptDirectory, "from_config", classmethod(counting))
    monkeypatch.setattr(dagster_sql, "ScriptDirectory", ScriptDirectory)
    monkeypatch.setattr(warm.ScriptsReadOnce, "_made", {})
    return reads


def open_instances(ref: dg._core.instance.InstanceRef, times: int) -> list[int]:
    counts = []
    for _ in range(times):  # as a sensor tick does: a new instance from the daemon's ref
        with dg.DagsterInstance.from_ref(ref) as instance:
            counts.append(instance.get_runs_count())
    return counts


def test_an_instance_opened_again_reads_the_migration_scripts_once(tmp_path, scripts_read):
    with dg.instance_for_test(temp_dir=str(tmp_path)) as instance:
        ref = instance.get_ref()
        assert open_instances(ref, 2) == [0, 0]
        unpatched = len(scripts_read)
        assert unpatched >= 2, "each instance reads the scripts when nothing is kept"
        scripts_read.clear()
        warm.read_migrations_once()
        warm.read_migrations_once()  # idempotent
        assert open_instances(ref, 3) == [0, 0, 0]
        once = len(scripts_read)
        assert once == warm.ScriptsReadOnce.directories() <= unpatched / 2  # one per storage
        assert open_instances(ref, 3) == [0, 0, 0]
        assert len(scripts_read) == once


def test_a_changed_dagster_is_named_not_guessed(monkeypatch):
    monkeypatch.setattr(dagster_sql, "ScriptDirectory", object())
    with pytest.raises(SystemExit, match="not the one memorose_dagster.cli.warm"):
        warm.read_migrations_once()


SENTENCE = "Maria moved to Lisbon in March."


def entity_model_in_run(answers) -> None:
    """A run forked from the code server's fork server: is the entity model there already,
    and does it work?"""
    from memorose_dagster.models.ner import entity_extractor

    extractor = entity_extractor()
    loaded = extractor.loaded
    answers.put((loaded, extractor([SENTENCE])[0]))


def test_a_run_forks_with_the_entity_model_loaded():
    context = code_server.ForkServerMultiprocessing.get_context()
    answers = context.Queue()
    run = context.Process(target=entity_model_in_run, args=(answers,))
    run.start()
    try:
        loaded, mentions = answers.get(timeout=120)
    finally:
        run.join(timeout=30)
    assert run.exitcode == 0
    assert loaded, "the fork server loads the entity model before it forks a run"
    from memorose_dagster.models.ner import entity_extractor

    assert [tuple(m) for m in mentions] == entity_extractor()([SENTENCE])[0]
    assert ("Lisbon", "place") in mentions
