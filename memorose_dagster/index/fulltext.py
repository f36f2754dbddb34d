"""BM25 over Tantivy: one index per node, every document scoped by tenant and user.

One writer (the node's indexer thread); searches take a fresh searcher after each commit. Queries
are built from plain word tokens, never handed raw to the query parser, so user text cannot break
it. ``search`` never asks Tantivy for 0 hits (that panics with a BaseException).
"""

from __future__ import annotations

import re
import shutil
import threading
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from pathlib import Path

import tantivy

from memorose_dagster.lexicon import STOPWORDS

_WORD = re.compile(r"\w+", re.UNICODE)
_RESERVED = {"and", "or", "not", "to", "in"}  # parser keywords, lowercased words are safe
CONTEXT_BOOST = 0.8  # a match in a neighbouring turn counts a bit less than in the turn
SCHEMA_VERSION = "3"  # 3: documents keyed by (tenant, id), not by id alone


def doc_key(tenant: str, record_id: str) -> str:
    """A document's key: an id is unique per tenant only. Neither part holds ``\\x1f``."""
    return f"{tenant}\x1f{record_id}"


@dataclass(frozen=True, slots=True)
class TextDoc:
    id: str
    tenant: str
    user_id: str
    stream_id: str
    layer: str
    text: str
    context: str = ""


@dataclass(frozen=True, slots=True)
class Hit:
    id: str
    layer: str
    score: float


def _schema() -> tantivy.Schema:
    builder = tantivy.SchemaBuilder()
    builder.add_text_field("key", stored=False, tokenizer_name="raw")
    builder.add_text_field("id", stored=True, tokenizer_name="raw")
    builder.add_text_field("layer", stored=True, tokenizer_name="raw")
    for name in ("tenant", "user_id", "stream_id"):
        builder.add_text_field(name, stored=False, tokenizer_name="raw")
    builder.add_text_field("text", stored=False, tokenizer_name="en_stem")
    builder.add_text_field("context", stored=False, tokenizer_name="en_stem")
    return builder.build()


def query_terms(text: str) -> list[str]:
    """Word tokens of a query without parser keywords, question words and pronouns (they
    match everywhere and push real evidence down); all tokens if nothing else is left."""
    tokens = [m.lower() for m in _WORD.findall(text)]
    kept = [w for w in tokens if w not in _RESERVED and w not in STOPWORDS]
    return kept or [w for w in tokens if w not in _RESERVED]


class FullTextIndex:
    def __init__(self, path: str | Path, writer_heap: int = 64_000_000):
        path = Path(path)
        version = path / "SCHEMA_VERSION"
        self.rebuilt = path.exists() and (not version.exists()
                                          or version.read_text() != SCHEMA_VERSION)
        if self.rebuilt:  # derived data: drop it, the indexer refills it from RocksDB
            shutil.rmtree(path)
        path.mkdir(parents=True, exist_ok=True)
        version.write_text(SCHEMA_VERSION)
        self._schema = _schema()
        self._index = tantivy.Index(self._schema, path=str(path))
        self._writer = self._index.writer(writer_heap, 1)
        self._lock = threading.Lock()

    def upsert(self, docs: list[TextDoc], new: AbstractSet[tuple[str, str]] = frozenset(),
               ) -> None:
        """Index ``docs``, replacing any document of the same (tenant, id) except for those in
        ``new``, known to have none: a delete is applied at commit against every segment, and
        skipping it for fresh events took a fifth off a commit of 500."""
        with self._lock:
            for doc in docs:
                key = doc_key(doc.tenant, doc.id)
                if (doc.tenant, doc.id) not in new:
                    self._writer.delete_documents_by_term("key", key)
                self._writer.add_document(tantivy.Document(
                    key=key, id=doc.id, tenant=doc.tenant, user_id=doc.user_id,
                    stream_id=doc.stream_id, layer=doc.layer, text=doc.text,
                    context=doc.context))

    def delete(self, keys: list[tuple[str, str]]) -> None:
        """Drop the documents of these (tenant, id) pairs."""
        with self._lock:
            for tenant, record_id in keys:
                self._writer.delete_documents_by_term("key", doc_key(tenant, record_id))

    def commit(self) -> None:
        with self._lock:
            self._writer.commit()
        self._index.reload()

    def clear(self) -> None:
        with self._lock:
            self._writer.delete_all_documents()
            self._writer.commit()
        self._index.reload()

    def search(self, text: str, tenant: str, user_id: str, limit: int,
               stream_id: str | None = None, layers: list[str] | None = None) -> list[Hit]:
        terms = query_terms(text)
        if not terms or limit <= 0:
            return []
        must = tantivy.Occur.Must
        text_query = self._index.parse_query(" ".join(terms), ["text", "context"],
                                             field_boosts={"context": CONTEXT_BOOST})
        clauses = [(must, text_query), (must, self._term("tenant", tenant)),
                   (must, self._term("user_id", user_id))]
        if stream_id is not None:
            clauses.append((must, self._term("stream_id", stream_id)))
        if layers:
            clauses.append((must, tantivy.Query.boolean_query(
                [(tantivy.Occur.Should, self._term("layer", layer)) for layer in layers])))
        searcher = self._index.searcher()
        result = searcher.search(tantivy.Query.boolean_query(clauses), limit)
        hits = []
        for score, address in result.hits:
            doc = searcher.doc(address)
            hits.append(Hit(doc["id"][0], doc["layer"][0], score))
        return hits

    def close(self) -> None:
        """Release the writer (and its directory lock) so the index can be opened again."""
        with self._lock:
            self._writer.commit()
            self._writer.wait_merging_threads()
            self._writer = None

    def num_docs(self) -> int:
        return self._index.searcher().num_docs

    def _term(self, field: str, value: str) -> tantivy.Query:
        return tantivy.Query.term_query(self._schema, field, value)
