"""A served node runs numpy's OpenBLAS on one thread (models/blas.py): on more, its worker
spins between vector searches and takes a core from every other request."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from api import create_app
from memorose_dagster.models import blas
from tests.conftest import make_settings

# Vector searches one after another with a pause between them, as questions come to a node;
# then the CPU each of the process's threads used meanwhile, against the wall time.
SEARCHES = textwrap.dedent("""
    import json, os, sys, time
    import numpy as np
    from memorose_dagster.models import blas
    if sys.argv[1] == "one":
        assert blas.one_thread()
    matrix = np.random.default_rng(1).standard_normal((5000, 384)).astype(np.float32)
    query = matrix[7].copy()

    def cpu():
        out = {}
        for tid in os.listdir("/proc/self/task"):
            rest = open(f"/proc/self/task/{tid}/stat").read().rsplit(")", 1)[1].split()
            out[tid] = (int(rest[11]) + int(rest[12])) / os.sysconf("SC_CLK_TCK")
        return out

    before, started = cpu(), time.perf_counter()
    for _ in range(300):
        scores = matrix @ query
        time.sleep(0.003)  # the rest of a question: not BLAS
    wall, after = time.perf_counter() - started, cpu()
    main = str(os.getpid())
    others = max((t - before.get(tid, 0.0) for tid, t in after.items() if tid != main), default=0)
    print(json.dumps({"wall": wall, "busiest_other": others, "threads": blas.threads(),
                      "best": int(np.argmax(scores))}))
""")


def run_searches(mode: str, tmp_path: Path) -> dict:
    script = tmp_path / "searches.py"
    script.write_text(SEARCHES)
    env_free = {k: v for k, v in os.environ.items()
                if k not in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS")}
    done = subprocess.run([sys.executable, str(script), mode], capture_output=True, text=True,
                          timeout=120, env=env_free, cwd=Path(__file__).parent.parent, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_on_one_thread_no_thread_spins_between_searches(tmp_path: Path):
    measured = run_searches("one", tmp_path)
    assert measured["best"] == 7  # the searches ran, and right
    assert measured["threads"] and set(measured["threads"]) == {1}
    # A spinning worker uses about all of the wall time; an idle one none of it.
    assert measured["busiest_other"] < 0.25 * measured["wall"], measured


def test_the_served_node_sets_one_thread_and_keeps_an_explicit_setting(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv("OPENBLAS_NUM_THREADS", raising=False)
    assert blas.set_threads(2)
    with TestClient(create_app(make_settings(tmp_path / "a"))) as client:
        assert client.get("/health").status_code == 200
        assert set(blas.threads()) == {1}

    blas.set_threads(2)
    monkeypatch.setenv("OPENBLAS_NUM_THREADS", "2")
    with TestClient(create_app(make_settings(tmp_path / "b"))) as client:
        assert client.get("/health").status_code == 200
        assert set(blas.threads()) == {2}
    blas.set_threads(1)
