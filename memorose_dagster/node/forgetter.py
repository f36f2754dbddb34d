"""Explicit forgetting on a node: forget one item, or preview-then-confirm a forget by query.

A forget is ONE log command: the target's tombstone, the tombstones of everything that rested
only on it, the rewritten records that rested on it in part (``memory/forget.py``), and fresh
vectors for rewritten memories and insights (their text changed). Every replica applies it at
once, and each node's indexer drops the forgotten ids from Tantivy and LanceDB.

Forget by query is two steps so a person sees what goes before it goes. ``preview`` retrieves
the candidates and signs them: the token is the candidate list itself, with the tenant, user and
an expiry, under an HMAC keyed by a secret derived from the cluster secret. It is stateless, so
any member of the cluster can confirm it and nothing is stored until ``confirm``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from memorose_dagster.errors import InvalidInput, NotFound
from memorose_dagster.log import keys
from memorose_dagster.memory.forget import REASON_FORGOTTEN, Cascade, cascade
from memorose_dagster.records import (
    DERIVED_KINDS,
    KIND_OF_LAYER,
    LAYER_OF_KIND,
    Vector,
    record_id,
    vector_to_bytes,
)

if TYPE_CHECKING:
    from memorose_dagster.node.node import Node

TOKEN_TTL_SECONDS = 600.0


class Forgetter:
    def __init__(self, node: Node, token_ttl: float = TOKEN_TTL_SECONDS,
                 clock: Callable[[], float] = time.time):
        self._node = node
        self._ttl = token_ttl
        self._clock = clock
        secret = node.settings.resolved_secret().encode()
        self._key = hmac.new(secret, b"memorose/forget-token/v1", hashlib.sha256).digest()


    def find(self, tenant: str, layer: str, rid: str) -> dict[str, Any] | None:
        kind = KIND_OF_LAYER.get(layer)
        if kind is None:
            raise InvalidInput(f"cannot forget a {layer!r}: only L0, L1 and L2 items")
        return self._node.store.get(keys.target_key(tenant, kind, rid))

    def forget(self, tenant: str, layer: str, rid: str,
               reason: str = REASON_FORGOTTEN) -> dict[str, Any]:
        """Forget one event (L0), L1 memory or L2 insight and what rests on it, in one command."""
        target = self.find(tenant, layer, rid)
        if target is None:
            raise NotFound(f"no {layer} item {rid!r}")
        return self.forget_records(tenant, [target], reason)

    def forget_records(self, tenant: str, targets: list[dict[str, Any]],
                       reason: str = REASON_FORGOTTEN) -> dict[str, Any]:
        plans = []
        for user in sorted({t["user_id"] for t in targets}):
            records = {kind: self._node.store.derived_for_user(kind, tenant, user)
                       for kind in DERIVED_KINDS}
            plans.append(cascade([t for t in targets if t["user_id"] == user], records, reason))
        commands = [r for plan in plans for r in plan.records()]
        commands += self._vectors([r for plan in plans for r in plan.to_embed()])
        index = self._node.submit(commands)
        return _report(targets, plans, index)

    def _vectors(self, rewritten: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Rewritten memories and insights have new text; their old embeddings would still
        carry what was forgotten: re-embed them with the node's model (the one queries use)."""
        if not rewritten:
            return []
        embedder = self._node.embedder
        values = embedder.embed([r["content"] for r in rewritten])
        return [Vector(tenant=r["tenant"], record_id=r["id"], layer=LAYER_OF_KIND[r["kind"]],
                       model=embedder.name, values=vector_to_bytes(v)).to_dict()
                for r, v in zip(rewritten, values, strict=True)]


    def preview(self, tenant: str, user_id: str, query: str, top_k: int,
                layers: list[str] | None = None) -> dict[str, Any]:
        """What a forget by ``query`` would remove, and a token to confirm it. Changes nothing."""
        hits = self._node.retrieve(tenant, user_id, query, top_k, layers=layers)
        candidates = [{"id": h["id"], "layer": h["layer"], "content": h["content"],
                       "score": h["score"]} for h in hits]
        expires_at = int(self._clock() + self._ttl)
        claims = {"v": 1, "tenant": tenant, "user_id": user_id, "exp": expires_at,
                  "ids": sorted([c["layer"], c["id"]] for c in candidates)}
        return {"candidates": candidates, "token": self._sign(claims), "expires_at": expires_at}

    def confirm(self, tenant: str, token: str, ids: list[str]) -> dict[str, Any]:
        """Forget exactly ``ids`` (and what rests on them), if the token lists them all."""
        claims = self._verify(token, tenant)
        layer_of = {rid: layer for layer, rid in claims["ids"]}
        unknown = sorted(set(ids) - set(layer_of))
        if unknown:
            raise InvalidInput(f"ids not among the previewed candidates: {unknown}",
                               field="ids")
        targets = [t for t in (self.find(tenant, layer_of[rid], rid) for rid in sorted(set(ids)))
                   if t is not None and t["user_id"] == claims["user_id"]]
        if not targets:  # all already forgotten since the preview: nothing to commit
            return {"forgotten": [], "cascaded": [], "updated": [], "log_index": None}
        return self.forget_records(tenant, targets)

    def _sign(self, claims: dict[str, Any]) -> str:
        body = json.dumps(claims, separators=(",", ":"), sort_keys=True).encode()
        mac = hmac.new(self._key, body, hashlib.sha256).digest()
        return f"{_b64(body)}.{_b64(mac)}"

    def _verify(self, token: str, tenant: str) -> dict[str, Any]:
        try:
            body_part, mac_part = token.split(".")
            body, mac = _unb64(body_part), _unb64(mac_part)
        except ValueError as exc:
            raise InvalidInput("malformed forget token", field="token") from exc
        if not hmac.compare_digest(mac, hmac.new(self._key, body, hashlib.sha256).digest()):
            raise InvalidInput("invalid forget token", field="token")
        claims = json.loads(body)
        if claims.get("v") != 1 or claims.get("tenant") != tenant:
            raise InvalidInput("invalid forget token", field="token")
        if claims["exp"] < self._clock():
            raise InvalidInput("forget token expired: preview again", field="token")
        return claims


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _report(targets: list[dict[str, Any]], plans: list[Cascade],
            index: int) -> dict[str, Any]:
    asked = {(t["kind"], record_id(t)) for t in targets}
    removed = [(t["target_kind"], t["target_id"]) for p in plans for t in p.tombstones]
    return {
        "forgotten": [{"id": rid, "kind": kind} for kind, rid in removed if (kind, rid) in asked],
        "cascaded": [{"id": rid, "kind": kind} for kind, rid in removed
                     if (kind, rid) not in asked],
        "updated": [{"id": record_id(r), "kind": r["kind"]} for p in plans for r in p.updates],
        "log_index": index,
    }
