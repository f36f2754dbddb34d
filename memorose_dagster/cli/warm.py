"""What every Dagster process of ``memorose up`` would otherwise redo, done once a process.

* **Dagster's migration scripts.** Dagster opens its sqlite instance in every run, and in the
  code server at every sensor tick (each second); each time alembic reads and parses Dagster's
  migration scripts to learn the head revision: ~0.2 s of CPU, a fifth of a core in the code
  server while a bulk load is derived (py-spy under ``bench/pipeline_lag.py --bulk``). The scripts
  do not change while a process runs: ``read_migrations_once`` has each directory read once.
* **The entity model.** Each run's graph step loaded spaCy's model (~1.5 s of CPU a run); the fork
  server runs start from loads it once (``preload_runs``) and every run inherits it, loaded,
  with the client's TLS context (``memorose_client.sync.tls_context``). The embedding model is
  not: onnxruntime's thread pools do not survive a fork.
"""

from __future__ import annotations

import threading
from typing import Any

import dagster._core.storage.sql as dagster_sql
from alembic.script import ScriptDirectory


class ScriptsReadOnce:
    """``alembic.script.ScriptDirectory`` as ``dagster._core.storage.sql`` uses it (only
    ``from_config``): one directory per (ini file, script location), parsed once, its revision
    map kept."""

    _made: dict[tuple[Any, Any], ScriptDirectory] = {}
    _lock = threading.Lock()

    @classmethod
    def from_config(cls, config: Any) -> ScriptDirectory:
        key = (config.config_file_name, config.get_main_option("script_location"))
        with cls._lock:
            if key not in cls._made:
                cls._made[key] = ScriptDirectory.from_config(config)
            return cls._made[key]

    @classmethod
    def directories(cls) -> int:
        return len(cls._made)


def read_migrations_once() -> None:
    """Has Dagster's instance storage read its migration scripts once in this process."""
    current = getattr(dagster_sql, "ScriptDirectory", None)
    if current is ScriptsReadOnce:
        return
    if current is not ScriptDirectory:  # changed upstream: say so, do not guess
        raise SystemExit("dagster._core.storage.sql no longer uses alembic's ScriptDirectory: "
                         "this Dagster version is not the one memorose_dagster.cli.warm was "
                         "written for")
    dagster_sql.ScriptDirectory = ScriptsReadOnce


def preload_runs() -> None:
    """In the fork server runs start from: the migration scripts read and the entity model
    loaded, so that each run forked from it has both."""
    from dagster._core.storage.runs.sqlite import sqlite_run_storage

    from memorose_client.sync import tls_context
    from memorose_dagster.models.ner import entity_extractor

    read_migrations_once()
    config = dagster_sql.get_alembic_config(sqlite_run_storage.__file__)
    dagster_sql.ScriptDirectory.from_config(config).as_revision_number("head")
    entity_extractor().load()
    tls_context()
