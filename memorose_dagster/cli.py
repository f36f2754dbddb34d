"""The ``memorose`` command line: serve a node, rebuild its indexes."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from memorose_dagster.settings import Settings


def _node_flags(parser: argparse.ArgumentParser) -> None:
    env = Settings.from_env()
    parser.add_argument("--host", default=env.host, help="bind address (MEMOROSE_HOST)")
    parser.add_argument("--port", type=int, default=env.port, help="HTTP port (MEMOROSE_PORT)")
    parser.add_argument("--data-dir", type=Path, default=env.home,
                        help="data directory (MEMOROSE_HOME, default ./data)")
    parser.add_argument("--node-id", default=env.node_id, help="node name (MEMOROSE_NODE_ID)")
    parser.add_argument("--raft-port", type=int, default=env.raft_port,
                        help="Raft peer port (MEMOROSE_RAFT_PORT, default port + 1000)")
    parser.add_argument("--peers", default=",".join(env.peers),
                        help="other members' host:raft_port, comma-separated (MEMOROSE_PEERS)")


def _settings(args: argparse.Namespace) -> Settings:
    return Settings.from_env(
        host=args.host, port=args.port, home=args.data_dir, node_id=args.node_id,
        raft_port=args.raft_port,
        peers=tuple(p.strip() for p in args.peers.split(",") if p.strip()))


def serve(args: argparse.Namespace) -> int:
    import uvicorn

    from api import create_app

    settings = _settings(args)
    logging.getLogger("memorose").info("node %s, data in %s", settings.name, settings.home)
    uvicorn.run(create_app(settings), host=settings.host, port=settings.port,
                log_level="info", timeout_graceful_shutdown=10)
    return 0


def up(args: argparse.Namespace) -> int:
    from memorose_dagster.up import up as run_up

    settings = _settings(args)
    serve_args = ["--host", settings.host, "--port", str(settings.port),
                  "--data-dir", str(settings.home), "--raft-port", str(settings.raft_port),
                  "--node-id", settings.node_id, "--peers", ",".join(settings.peers)]
    return run_up(settings, args.dagster_port, serve_args)


def reindex(args: argparse.Namespace) -> int:
    """Rebuild Tantivy and LanceDB from RocksDB. The node must be stopped."""
    from memorose_dagster.index.embedding import LocalMiniLM
    from memorose_dagster.index.fulltext import FullTextIndex
    from memorose_dagster.index.vectors import VectorIndex
    from memorose_dagster.indexer import Indexer
    from memorose_dagster.log.store import Store

    home = args.data_dir
    store = Store(home / "rocksdb")
    indexer = Indexer(store, FullTextIndex(home / "tantivy"),
                      VectorIndex(home / "lancedb", LocalMiniLM.dim), home / "indexed.watermark")
    indexer.reset()
    entries = indexer.catch_up()
    indexer.vectors.optimize()
    print(f"reindexed {entries} log entries: {indexer.fulltext.num_docs()} documents in Tantivy, "
          f"{indexer.vectors.count()} vectors in LanceDB")
    indexer.fulltext.close()
    store.close()
    return 0


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
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
    p_reindex.set_defaults(func=reindex)
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
