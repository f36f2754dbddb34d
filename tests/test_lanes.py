"""A run of the backlog lane yields the CPU to fresh runs, the daemon and the node: it lowers the
priority of every thread of its process as its resources are set up, threads started before
included (on Linux a nice value is a thread's). Each case runs in a process of its own: a
lowered priority cannot be raised again without privileges."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

from memorose_dagster.pipeline.lanes import BACKLOG_NICE, IN_BACKLOG, LANE_TAG

PROBE = textwrap.dedent('''
    import json, os, sys, threading
    import dagster as dg
    from memorose_dagster.pipeline.resources import ClusterResource

    release = threading.Event()
    earlier = threading.Thread(target=release.wait)  # like the embedder's pool, made before
    earlier.start()

    @dg.asset
    def probe(cluster: ClusterResource) -> dict:
        later = threading.Thread(target=release.wait)
        later.start()
        nice = {int(t): os.getpriority(os.PRIO_PROCESS, int(t))
                for t in os.listdir("/proc/self/task")}
        release.set()
        return {"earlier": nice[earlier.native_id], "later": nice[later.native_id],
                "this": nice[threading.get_native_id()], "threads": sorted(set(nice.values()))}

    result = dg.materialize([probe], resources={"cluster": ClusterResource(urls="http://127.0.0.1:9")},
                            tags=json.loads(sys.argv[1]))
    print(json.dumps(result.output_for_node("probe")))
''')


def threads_nice(tags: dict[str, str]) -> dict:
    done = subprocess.run([sys.executable, "-c", PROBE, json.dumps(tags)], capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_a_backlog_run_lowers_every_thread_and_a_fresh_run_none():
    start = os.getpriority(os.PRIO_PROCESS, 0)  # what a child starts at (0, unless run niced)
    lowered = max(start, BACKLOG_NICE)
    backlog = threads_nice(IN_BACKLOG)
    assert backlog["this"] == backlog["earlier"] == backlog["later"] == lowered
    assert backlog["threads"] == [lowered]
    fresh = threads_nice({LANE_TAG: "fresh"})
    assert fresh["this"] == fresh["earlier"] == fresh["later"] == start
    assert threads_nice({})["threads"] == [start]
