"""The Dagster daemon as ``memorose up`` runs it: ``dagster-daemon``, with sensors evaluated
every second instead of every five.

Dagster's sensor daemon evaluates sensors in a loop that sleeps out ``MIN_INTERVAL_LOOP_TIME``
(5 s) between rounds, whatever a sensor's ``minimum_interval_seconds``; that loop was the
largest fixed part of an event's wait for its memories (p50 ~4 s of a ~5 s trickle lag,
``bench/pipeline_lag.py``). The log sensor's tick is one cheap read of the node, so it runs
every second here. Everything else is the stock daemon: ``python -m memorose_dagster.cli.daemon
run -w workspace.yaml``.
"""

import dagster._daemon.sensor as sensor_daemon
from dagster._daemon.cli import main

SENSOR_LOOP_SECONDS = 1.0

if __name__ == "__main__":
    if not hasattr(sensor_daemon, "MIN_INTERVAL_LOOP_TIME"):  # renamed upstream: say so
        raise SystemExit("dagster._daemon.sensor.MIN_INTERVAL_LOOP_TIME is gone: this Dagster "
                         "version is not the one memorose_dagster.cli.daemon was written for")
    sensor_daemon.MIN_INTERVAL_LOOP_TIME = SENSOR_LOOP_SECONDS
    main()
