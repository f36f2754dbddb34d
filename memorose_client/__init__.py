"""Python client for the Memorose HTTP API, blocking and asyncio.

    from memorose_client import MemoroseClient
    client = MemoroseClient("http://localhost:8000")
    client.ingest("user_123", "session_1", "User loves hiking")
    client.retrieve(user_id="user_123", stream_id="session_1", query="outdoor activities", top_k=5)

    async with AsyncMemoroseClient("http://localhost:8000") as client:
        await client.retrieve(user_id="user_123", query="outdoor activities")

Several node URLs may be given (a list, or one comma-separated string): a request that cannot
reach a node, or that a node answers 503, is retried on the next one. Every event gets its id
(a ULID) here, before the first attempt, so a batch resent after a lost response is stored once.
Answers are typed (``memorose_client.models``) and still read like the JSON (``r["id"]``).
"""

from memorose_client.async_client import AsyncMemoroseClient
from memorose_client.errors import MemoroseAPIError, MemoroseConnectionError
from memorose_client.models import (
    ApiKey,
    Context,
    Entity,
    Event,
    ForgetPreview,
    Forgotten,
    Graph,
    Memory,
    MemoryPage,
    Provenance,
    Relation,
    Result,
    Status,
)
from memorose_client.sync import MemoroseClient

__all__ = ["MemoroseClient", "AsyncMemoroseClient", "MemoroseAPIError",
           "MemoroseConnectionError", "ApiKey", "Context", "Entity", "Event", "ForgetPreview",
           "Forgotten", "Graph", "Memory", "MemoryPage", "Provenance", "Relation", "Result",
           "Status"]
