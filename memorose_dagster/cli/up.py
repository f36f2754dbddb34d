"""``memorose up``: the node, the Dagster code server, webserver and daemon, as one command.

DAGSTER_HOME lives in the data directory with a ``dagster.yaml`` for one machine: no telemetry,
runs queued and dequeued every second, two lanes of one run each (the ``memorose/lane`` tag):
``fresh`` for the log sensor's ranges of new events, ``backlog`` for a bulk load's chunks,
re-derivations, schedules and the lake; a backlog run yields the CPU to the rest
(``pipeline/lanes.py``). Within a lane the queue takes the highest ``dagster/priority`` first,
in order of creation. So a fresh event waits for neither the
backlog nor the chunk that is running; runs over disjoint log ranges may overlap, and a step
leases the users it derives (``node/leases.py``) so that no two write one user's memories at
once. The daemon evaluates sensors every second (``cli/daemon.py``), and the code server starts
runs from a fork server holding the definitions already imported (``cli/code_server.py``).
Ctrl-C or SIGTERM stops them all.
"""

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx

from memorose_dagster.errors import StartupError
from memorose_dagster.settings import Settings

DAGSTER_YAML = """\
telemetry:
  enabled: false
run_coordinator:
  module: dagster.core.run_coordinator
  class: QueuedRunCoordinator
  config:
    max_concurrent_runs: 2
    dequeue_interval_seconds: 1
    tag_concurrency_limits:
      - key: "memorose/lane"
        value: "fresh"
        limit: 1
      - key: "memorose/lane"
        value: "backlog"
        limit: 1
run_monitoring:
  enabled: true
  poll_interval_seconds: 5
"""

WORKSPACE_YAML = """\
load_from:
  - grpc_server:
      host: 127.0.0.1
      port: {port}
      location_name: memorose
"""


def stop_requested() -> threading.Event:
    """Set by SIGTERM or SIGINT (Ctrl-C); a supervisor loop polls it and shuts its children."""
    event = threading.Event()

    def on_signal(_signum: int, _frame: object) -> None:
        event.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    return event


def prepare_dagster_home(home: Path, code_port: int) -> Path:
    dagster_home = (home / "dagster").resolve()
    dagster_home.mkdir(parents=True, exist_ok=True)
    (dagster_home / "dagster.yaml").write_text(DAGSTER_YAML)
    (dagster_home / "workspace.yaml").write_text(WORKSPACE_YAML.format(port=code_port))
    return dagster_home


def free_port(host: str) -> int:
    with socket.socket() as probe:
        probe.bind((host, 0))
        return probe.getsockname()[1]


def _wait_code_server(bin_dir: Path, port: int, process: subprocess.Popen,
                      timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"the Dagster code server exited with code {process.returncode} "
                             "while starting")
        check = subprocess.run([str(bin_dir / "dagster"), "api", "grpc-health-check", "-p",
                                str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               timeout=60)
        if check.returncode == 0:
            return
        time.sleep(0.5)
    raise SystemExit(f"the Dagster code server did not answer on port {port} within "
                     f"{timeout:.0f}s")


def _wait_http(url: str, process: subprocess.Popen, what: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"{what} exited with code {process.returncode} while starting")
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise SystemExit(f"{what} did not answer {url} within {timeout:.0f}s")


def _init_instance(bin_dir: Path, env: dict[str, str]) -> None:
    """Create (or upgrade) the Dagster instance's sqlite storage once, before the daemon and the
    webserver start: on a fresh directory both used to create it at once, and one of them could
    fail with alembic's "more than one head"."""
    done = subprocess.run([str(bin_dir / "dagster"), "instance", "migrate"], env=env,
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                          timeout=120)
    if done.returncode != 0:
        raise StartupError(f"cannot set up the Dagster instance in {env['DAGSTER_HOME']}: "
                           + (done.stderr.strip().splitlines() or ["no message"])[-1])


def _stop(processes: list[subprocess.Popen], grace: float = 15.0) -> None:
    for process in reversed(processes):
        if process.poll() is None:
            process.terminate()
    deadline = time.monotonic() + grace
    for process in reversed(processes):
        try:
            process.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def up(settings: Settings, dagster_port: int, serve_args: list[str]) -> int:
    code_port = free_port("127.0.0.1")
    dagster_home = prepare_dagster_home(settings.home, code_port)
    bin_dir = Path(sys.executable).parent
    env = {**os.environ, "DAGSTER_HOME": str(dagster_home),
           "MEMOROSE_URL": f"http://{settings.host}:{settings.port}",
           "MEMOROSE_LAKE": os.environ.get("MEMOROSE_LAKE") or str(settings.home / "lake")}
    workspace = str(dagster_home / "workspace.yaml")
    processes: list[subprocess.Popen] = []
    stopping = stop_requested()
    try:
        node = subprocess.Popen([sys.executable, "-m", "memorose_dagster.cli", "serve",
                                 *serve_args], env=env)
        processes.append(node)
        _init_instance(bin_dir, env)  # while the node loads its model
        # The code server's working directory comes first on its sys.path: a folder of ours, so
        # a stray ./assets or ./sensors where the command was started cannot shadow the packages.
        code_server = subprocess.Popen([sys.executable, "-m", "memorose_dagster.cli.code_server",
                                        "-h", "127.0.0.1", "-p", str(code_port)], env=env,
                                       cwd=dagster_home)
        processes.append(code_server)
        _wait_http(f"{env['MEMOROSE_URL']}/health", node, "the node", 120)
        _wait_code_server(bin_dir, code_port, code_server, 180)
        processes.append(subprocess.Popen(
            [sys.executable, "-m", "memorose_dagster.cli.daemon", "run", "-w", workspace],
            env=env))
        webserver = subprocess.Popen(
            [str(bin_dir / "dagster-webserver"), "-w", workspace, "-h", settings.host,
             "-p", str(dagster_port)], env=env)
        processes.append(webserver)
        _wait_http(f"http://{settings.host}:{dagster_port}/server_info", webserver,
                   "the Dagster webserver", 180)
        print(f"memorose up: API http://{settings.host}:{settings.port}  "
              f"Dagster UI http://{settings.host}:{dagster_port}  data {settings.home}",
              flush=True)
        while not stopping.is_set():
            for process in processes:
                if process.poll() is not None:
                    print(f"memorose up: {process.args[0]} exited ({process.returncode}); "
                          "stopping", file=sys.stderr, flush=True)
                    return 1
            time.sleep(0.2)
        return 0
    finally:
        _stop(processes)
