"""A served node's full collections, from the log ``bench/gc_log/sitecustomize.py`` wrote.

    PYTHONPATH=$PWD/bench/gc_log MEMOROSE_GC_LOG=/tmp/gc python bench/realistic.py --big
    python bench/gc_pauses.py /tmp/gc

A row per node process: its full collections before the start's freeze (as it opens its
store) and after it, their pauses in all and the largest, and how many objects they found to
free (what freezing survivors could keep for good: ``api/collector.py``).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path


def summary(path: Path) -> str:
    before, after = [], []
    for line in path.read_text().splitlines():
        stamp, generation, ms, collected, frozen = line.split()
        if generation != "gen2":
            continue
        pause = (float(ms.removesuffix("ms")), int(collected.partition("=")[2]))
        (before if frozen == "frozen=0" else after).append(pause)
    total = sum(ms for ms, _ in after)
    largest = max((ms for ms, _ in after), default=0.0)
    found = sum(n for _, n in after)
    return (f"{path.name:<24} {len(before):>6} {len(after):>6} {total / 1000:>9.2f} s "
            f"{largest:>8.1f} ms {found:>8}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("prefix", help="MEMOROSE_GC_LOG of the run")
    args = parser.parse_args(argv)
    prefix = Path(args.prefix)
    logs = sorted(prefix.parent.glob(f"{prefix.name}.*"))
    if not logs:
        print(f"no log {prefix}.PID: was PYTHONPATH=$PWD/bench/gc_log set?", file=sys.stderr)
        return 2
    print(f"{'process':<24} {'start':>6} {'after':>6} {'paused':>11} {'largest':>11} {'found':>8}")
    for path in logs:
        print(summary(path))
    return 0


if __name__ == "__main__":
    sys.exit(main())
