"""The ``memorose`` command line: serve a node, run a cluster, rebuild indexes, manage keys,
serve MCP over stdio."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from memorose_dagster.cli import preflight
from memorose_dagster.errors import MemoroseError
from memorose_dagster.settings import Settings


def _node_flags(parser: argparse.ArgumentParser) -> None:
    env = Settings.from_env(check=False)  # the flags may still change the bind
    parser.add_argument("--host", default=env.host, help="bind address (MEMOROSE_HOST)")
    parser.add_argument("--port", type=int, default=env.port, help="HTTP port (MEMOROSE_PORT)")
    parser.add_argument("--data-dir", type=Path, default=env.home,
                        help="data directory (MEMOROSE_HOME, default ./data)")
    parser.add_argument("--node-id", default=env.node_id, help="node name (MEMOROSE_NODE_ID)")
    parser.add_argument("--raft-port", type=int, default=env.raft_port,
                        help="Raft peer port (MEMOROSE_RAFT_PORT, default port + 1000)")
    parser.add_argument("--peers", default=",".join(env.peers),
                        help="other members' host:raft_port, comma-separated (MEMOROSE_PEERS)")
    parser.add_argument("--config", type=Path, default=None,
                        help="TOML file with any of: " + ", ".join(CONFIG_KEYS)
                        + " (flags win over it, it wins over the environment)")


CONFIG_KEYS = {"host": str, "port": int, "data_dir": Path, "node_id": str, "raft_port": int,
               "peers": str}


def _config_defaults(path: Path) -> dict[str, object]:
    import tomllib

    with path.open("rb") as f:
        data = tomllib.load(f)
    unknown = sorted(set(data) - set(CONFIG_KEYS))
    if unknown:
        raise SystemExit(f"{path}: unknown keys {unknown}; known: {', '.join(CONFIG_KEYS)}")
    if isinstance(data.get("peers"), list):
        data["peers"] = ",".join(data["peers"])
    return {key: CONFIG_KEYS[key](value) for key, value in data.items()}


def _settings(args: argparse.Namespace) -> Settings:
    return Settings.from_env(
        host=args.host, port=args.port, home=args.data_dir, node_id=args.node_id,
        raft_port=args.raft_port,
        peers=tuple(p.strip() for p in args.peers.split(",") if p.strip()))


def check_node(settings: Settings) -> None:
    """What would stop ``settings``' node from starting, checked before anything starts."""
    raft_host, _, raft_port = settings.raft_address.rpartition(":")
    preflight.node(settings.host, settings.port, raft_host, int(raft_port), settings.home)


def serve(args: argparse.Namespace) -> int:
    settings = _settings(args)
    check_node(settings)
    settings.resolved_secret()  # here, not in the app's startup: one line, not a traceback

    import uvicorn

    from api import create_app

    logging.getLogger("memorose").info("node %s, data in %s", settings.name, settings.home)
    uvicorn.run(create_app(settings), host=settings.host, port=settings.port,
                log_level="info", timeout_graceful_shutdown=10)
    return 0


def up(args: argparse.Namespace) -> int:
    from memorose_dagster.cli.up import up as run_up

    settings = _settings(args)
    check_node(settings)
    preflight.port_free(settings.host, args.dagster_port, "Dagster UI", "--dagster-port")
    serve_args = ["--host", settings.host, "--port", str(settings.port),
                  "--data-dir", str(settings.home), "--raft-port", str(settings.raft_port),
                  "--node-id", settings.node_id, "--peers", ",".join(settings.peers)]
    return run_up(settings, args.dagster_port, serve_args)


def main(argv: list[str] | None = None) -> int:
    try:
        return _main(argv)
    except MemoroseError as exc:  # what stops a start is said in one line, no traceback
        print(f"memorose: {exc.message}", file=sys.stderr, flush=True)
        return 2


def _main(argv: list[str] | None) -> int:
    from memorose_dagster.cli.keys import add_keys_commands

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # not a line per health probe
    parser = argparse.ArgumentParser(prog="memorose", description="Memorose memory lake")
    sub = parser.add_subparsers(dest="command", required=True)
    p_serve = sub.add_parser("serve", help="run one node (API + Raft member)")
    _node_flags(p_serve)
    p_serve.set_defaults(func=serve)
    p_up = sub.add_parser("up", help="node + Dagster webserver + Dagster daemon, one command")
    _node_flags(p_up)
    p_up.add_argument("--dagster-port", type=int,
                      default=int(os.environ.get("MEMOROSE_DAGSTER_PORT", "3000")),
                      help="Dagster UI port (MEMOROSE_DAGSTER_PORT, default 3000)")
    p_up.set_defaults(func=up)
    p_reindex = sub.add_parser("reindex", help="rebuild Tantivy and LanceDB from RocksDB")
    _node_flags(p_reindex)
    p_reindex.set_defaults(func=_reindex)
    _cluster_commands(sub)
    add_keys_commands(sub)
    _lake_commands(sub)
    p_mcp = sub.add_parser("mcp", help="MCP server over stdio for desktop agents, talking to "
                                       "a node (MEMOROSE_URL) with a key (MEMOROSE_API_KEY)")
    p_mcp.add_argument("--url", default=os.environ.get("MEMOROSE_URL", "http://127.0.0.1:8000"),
                       help="node URL(s), comma-separated (MEMOROSE_URL)")
    p_mcp.set_defaults(func=_mcp)
    args = parser.parse_args(argv)
    if getattr(args, "config", None) is not None:  # file values become the flags' defaults
        {"serve": p_serve, "up": p_up, "reindex": p_reindex}[args.command].set_defaults(
            **_config_defaults(args.config))
        args = parser.parse_args(argv)
    return args.func(args)


def _cluster_commands(sub: argparse._SubParsersAction) -> None:
    p_cluster = sub.add_parser("cluster", help="run or manage a Raft cluster")
    actions = p_cluster.add_subparsers(dest="action", required=True)
    p_up = actions.add_parser("up", help="N replicas on this machine, one command")
    p_up.add_argument("--nodes", type=int, default=3, help="replicas (default 3)")
    p_up.add_argument("--host", default="127.0.0.1", help="bind and advertised address")
    p_up.add_argument("--port", type=int, default=8000, help="HTTP port of node1; +1 each")
    p_up.add_argument("--raft-port", type=int, default=0, help="Raft port of node1 (port+1000)")
    p_up.add_argument("--data-dir", type=Path, default=Path("data/cluster"),
                      help="node1..nodeN data directories go here (default ./data/cluster)")
    p_up.set_defaults(func=lambda a: _cluster_up(a.nodes, a.host, a.port, a.raft_port,
                                                 a.data_dir))
    url = os.environ.get("MEMOROSE_URL", "http://127.0.0.1:8000")
    for name, text in (("status", "every member's role, term, commit/applied index, lag"),
                       ("add", "add a member (start it with --peers = the current members)"),
                       ("remove", "remove a member (the leader hands over first)")):
        p = actions.add_parser(name, help=text)
        if name != "status":
            p.add_argument("address", help="the member's host:raft_port")
        p.add_argument("--url", default=url, help="node URL(s), comma-separated (MEMOROSE_URL)")
        p.set_defaults(func=_cluster_admin)


def _lake_commands(sub: argparse._SubParsersAction) -> None:
    from memorose_dagster.cli.lake_commands import add_lake_commands

    add_lake_commands(sub)


def _reindex(args: argparse.Namespace) -> int:
    from memorose_dagster.cli.reindex import reindex

    return reindex(args.data_dir)


def _mcp(args: argparse.Namespace) -> int:
    from memorose_dagster.cli.mcp import serve_stdio

    return serve_stdio(args.url, os.environ.get("MEMOROSE_API_KEY") or None)


def _cluster_admin(args: argparse.Namespace) -> int:
    from memorose_dagster.cli.cluster_admin import cluster_admin

    return cluster_admin(args.action, args.url, getattr(args, "address", ""))


def _cluster_up(nodes: int, host: str, port: int, raft_port: int, home: Path) -> int:
    from memorose_dagster.cli.local_cluster import cluster_up

    return cluster_up(nodes, host, port, raft_port, home)
