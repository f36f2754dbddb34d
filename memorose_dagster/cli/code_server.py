"""The Dagster code server as ``memorose up`` runs it: ``dagster api grpc`` over the memorose
definitions, starting each run's process from a fork server that already imported them.

Dagster's code server starts a run in a new interpreter (multiprocessing's ``spawn``), which then
imports Dagster, the definitions and their libraries: ~2 s of every run, 3-4 s while a backlog
chunk shares the two cores (``bench/pipeline_lag.py``), and the largest part of a fresh event's
wait for its memories after the sensor's tick. Here the server uses ``forkserver`` instead, with
those modules preloaded: the fork server imports them once (single-threaded, before any model
or database is opened), and each run forks from it. What a run does is unchanged. The fork
server also reads Dagster's migration scripts and loads the entity model before it forks, and
this server reads the scripts once for all its sensor ticks (``cli/warm.py``).

``python -m memorose_dagster.cli.code_server -h 127.0.0.1 -p PORT`` (the module and attribute are
fixed: ``memorose_dagster.pipeline.definitions:defs``).
"""

import multiprocessing
import sys
from typing import Any

import dagster._grpc.server as grpc_server
from dagster._cli import main

from memorose_dagster.cli.warm import read_migrations_once

DEFINITIONS = "memorose_dagster.pipeline.definitions"
# What a run imports before it does anything: the definitions (Dagster, the assets, the sensors,
# the client), the instance's storage it opens first, and the libraries its steps load on
# first use; then what each run would load again (``cli/run_preload.py``).
PRELOAD = [DEFINITIONS, "dagster._core.storage.runs.sqlite.sqlite_run_storage",
           "dagster._core.storage.sqlite_storage", "upath.core", "httpcore", "onnxruntime",
           "tokenizers", "spacy", "numpy", "memorose_dagster.cli.run_preload"]


class ForkServerMultiprocessing:
    """``multiprocessing`` as the code server sees it: the fork server's context for runs."""

    def __getattr__(self, name: str) -> Any:
        return getattr(multiprocessing, name)

    @staticmethod
    def get_context(_method: str | None = None) -> Any:
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload(PRELOAD)
        return context


if __name__ == "__main__":
    if not hasattr(grpc_server, "multiprocessing"):  # changed upstream: say so, do not guess
        raise SystemExit("dagster._grpc.server no longer uses multiprocessing: this Dagster "
                         "version is not the one memorose_dagster.cli.code_server was written for")
    grpc_server.multiprocessing = ForkServerMultiprocessing()
    read_migrations_once()  # a sensor tick opens the instance each second
    sys.argv = ["dagster", "api", "grpc", "-m", DEFINITIONS, "-a", "defs",
                "--location-name", "memorose", *sys.argv[1:]]
    main()
