"""Imported by the fork server that ``memorose up``'s runs start from (``cli/code_server.py``):
what every run would otherwise load again, loaded once before the forks (``cli/warm.py``)."""

from memorose_dagster.cli.warm import preload_runs

preload_runs()
