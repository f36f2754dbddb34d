"""Soak: the SIGKILL loop of bench/kill_loop.py, 20 kills, no acknowledged event lost.

Opt in with ``python -m pytest -m soak`` (a few minutes on 2 cores); excluded by default.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parent.parent / "bench"


@pytest.mark.soak
def test_twenty_sigkills_lose_no_acknowledged_event():
    done = subprocess.run([sys.executable, str(BENCH / "kill_loop.py"), "--kills", "20"],
                          cwd=BENCH, capture_output=True, text=True, timeout=1800)
    assert done.returncode == 0, done.stdout + done.stderr[-5000:]
    acked = int(re.search(r"^acknowledged events\s+([\d,]+)", done.stdout, re.M)[1]
                .replace(",", ""))
    assert acked > 0
    assert re.search(r"^lost\s+0\s", done.stdout, re.M), done.stdout
    assert re.search(r"^SIGKILLs\s+20\s", done.stdout, re.M), done.stdout
