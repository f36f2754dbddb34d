"""Derived, rebuildable per-node views of RocksDB: Tantivy (BM25), LanceDB (vectors), embeddings."""
