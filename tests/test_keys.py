"""Keys: strict bootstrap keys, keys made and revoked at run time through the log, read-only
keys, an admin key that is not a tenant key, and no open node on a network bind."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator

import pytest
from conftest import free_port, make_settings, serve_over_http, wait_until
from starlette.testclient import TestClient

from api import create_app
from memorose_dagster.cli import main
from memorose_dagster.errors import StartupError
from memorose_dagster.node.node import Node
from memorose_dagster.settings import Settings

ADMIN = "admin-key-0123456789"
ACME = "acme-key-0123456789"
EVENT = {"user_id": "u1", "stream_id": "s", "content": "the launch codes are blue"}


def as_key(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture
def keyed_node(tmp_path, embedder) -> Iterator[Node]:
    node = Node(make_settings(tmp_path / "k", api_keys={ACME: "acme"}, admin_key=ADMIN),
                embedder=embedder)
    node.wait_ready()
    yield node
    node.close()


@pytest.fixture
def keyed(keyed_node) -> Iterator[TestClient]:
    with TestClient(create_app(node=keyed_node)) as client:
        yield client


def make_key(client: TestClient, tenant: str, **fields: object) -> dict:
    made = client.post("/api/v1/admin/keys", json={"tenant": tenant, **fields},
                       headers=as_key(ADMIN))
    assert made.status_code == 201, made.text
    return made.json()


@pytest.fixture
def env(monkeypatch) -> pytest.MonkeyPatch:
    for name in ("API_KEYS", "ADMIN_KEY", "HOST", "ALLOW_OPEN"):
        monkeypatch.delenv("MEMOROSE_" + name, raising=False)
    return monkeypatch


@pytest.mark.parametrize(("api_keys", "admin", "said"), [
    ("ka-0123456789abcdef:tenantA, ", "", "entry 2 is blank"),
    ("ka-0123456789abcdef:tenantA,,kb-0123456789abcdef:b", "", "entry 2 is blank"),
    ("ka-0123456789abcdef", "", "no tenant"),
    ("ka-0123456789abcdef:", "", "tenant is empty"),
    (":tenantA", "", "key is empty"),
    ("short:tenantA", "", "shorter than 16"),
    ("ka-0123456789abcdef:_system", "", "reserved"),
    ("ka-0123456789abcdef:a,ka-0123456789abcdef:b", "", "twice"),
    ("", "short-admin", "MEMOROSE_ADMIN_KEY is shorter than 16"),
    ("", "   ", "MEMOROSE_ADMIN_KEY is empty"),
    ("ka-0123456789abcdef:a", "ka-0123456789abcdef", "must not be a tenant key"),
])
def test_bootstrap_keys_are_parsed_strictly(env, api_keys, admin, said):
    env.setenv("MEMOROSE_API_KEYS", api_keys)
    env.setenv("MEMOROSE_ADMIN_KEY", admin)
    with pytest.raises(StartupError, match=said) as caught:
        Settings.from_env()
    assert "0123456789abcdef" not in caught.value.message  # a key is never echoed


def test_good_bootstrap_keys_parse(env):
    env.setenv("MEMOROSE_API_KEYS", " ka-0123456789abcdef:tenantA , kb-0123456789abcdef:b")
    env.setenv("MEMOROSE_ADMIN_KEY", ADMIN)
    settings = Settings.from_env()
    assert settings.api_keys == {"ka-0123456789abcdef": "tenantA", "kb-0123456789abcdef": "b"}
    assert settings.admin_key == ADMIN


def test_no_open_node_on_a_network_bind(env):
    assert Settings.from_env(host="127.0.0.1").keys_configured is False  # loopback: open is fine
    Settings.from_env(host="::1")
    with pytest.raises(StartupError, match="MEMOROSE_API_KEYS.*MEMOROSE_ADMIN_KEY"):
        Settings.from_env(host="0.0.0.0")
    env.setenv("MEMOROSE_HOST", "10.1.2.3")
    with pytest.raises(StartupError):
        Settings.from_env()
    env.setenv("MEMOROSE_ADMIN_KEY", ADMIN)
    assert Settings.from_env().host == "10.1.2.3"
    env.delenv("MEMOROSE_ADMIN_KEY")
    env.setenv("MEMOROSE_ALLOW_OPEN", "1")
    assert Settings.from_env().allow_open


def test_a_blank_key_is_refused(tmp_path, embedder):
    # Settings as the old parser made them from MEMOROSE_API_KEYS="<key>:acme, ": an empty key
    # for tenant default. from_env refuses that now; a blank key sent is refused regardless.
    node = Node(make_settings(tmp_path / "b", api_keys={ACME: "acme", "": "default"}),
                embedder=embedder)
    node.wait_ready()
    try:
        with TestClient(create_app(node=node)) as client:
            for headers in ({"x-api-key": ""}, {"Authorization": "Bearer "},
                            {"Authorization": "Bearer"}):
                answer = client.post("/api/v1/events", json=EVENT, headers=headers)
                assert answer.status_code == 401, headers
                assert client.post("/api/v1/retrieve", json={"user_id": "u1", "query": "x"},
                                   headers=headers).status_code == 401
    finally:
        node.close()


def test_the_admin_key_is_not_a_tenant_key(keyed):
    assert keyed.post("/api/v1/events", json=EVENT, headers=as_key(ACME)).status_code == 201
    for method, path, body in (("POST", "/api/v1/events", EVENT),
                               ("POST", "/api/v1/retrieve", {"user_id": "u1", "query": "codes"}),
                               ("GET", "/api/v1/users/u1/memories", None)):
        answer = keyed.request(method, path, json=body, headers=as_key(ADMIN))
        assert answer.status_code == 403, path
        assert "use a tenant key" in answer.json()["error"]["message"]


def test_tenant_keys_reach_no_cluster_or_admin_route(keyed):
    tenant, admin = as_key(ACME), as_key(ADMIN)
    for method, path in (("GET", "/api/v1/cluster/status"), ("POST", "/api/v1/cluster/sync"),
                         ("GET", "/api/v1/admin/keys"), ("GET", "/api/v1/admin/log"),
                         ("GET", "/api/v1/admin/log/counts"), ("GET", "/api/v1/admin/digest")):
        assert keyed.request(method, path, headers=tenant).status_code == 403, path
    assert keyed.post("/api/v1/admin/keys", json={"tenant": "acme"},
                      headers=tenant).status_code == 403
    assert keyed.get("/api/v1/cluster/status", headers=admin).json()["role"] == "leader"
    assert keyed.post("/api/v1/cluster/sync", headers=admin).status_code == 200
    assert keyed.get("/health").status_code == 200  # open to probes


def test_keys_made_at_run_time_reach_their_tenant_until_revoked(keyed, keyed_node):
    made = make_key(keyed, "globex", name="billing agent")
    secret = made["secret"]
    assert secret.startswith(f"mr_{made['key_id']}_") and made["tenant"] == "globex"
    assert keyed.post("/api/v1/events", json=EVENT, headers=as_key(secret)).status_code == 201
    assert keyed.post("/api/v1/events", json=EVENT, headers=as_key(ACME)).status_code == 201
    query = {"user_id": "u1", "query": "launch codes"}
    found = keyed.post("/api/v1/retrieve", json=query, headers=as_key(secret)).json()["results"]
    assert len(found) == 1  # globex's own event, not acme's

    listed = keyed.get("/api/v1/admin/keys", headers=as_key(ADMIN)).json()["keys"]
    assert [(k["key_id"], k["tenant"], k["name"], k["revoked"]) for k in listed] == [
        (made["key_id"], "globex", "billing agent", False)]
    assert secret not in json.dumps(listed)
    stored = keyed_node.api_key(made["key_id"])  # committed through the log, hashed
    assert stored["secret_sha256"] == hashlib.sha256(secret.encode()).hexdigest()
    assert secret not in json.dumps(stored)

    revoked = keyed.delete(f"/api/v1/admin/keys/{made['key_id']}", headers=as_key(ADMIN))
    assert revoked.status_code == 200 and revoked.json()["revoked"] is True
    refused = keyed.post("/api/v1/retrieve", json=query, headers=as_key(secret))
    assert refused.status_code == 401 and "revoked" in refused.json()["error"]["message"]
    assert keyed.post("/api/v1/events", json=EVENT, headers=as_key(secret)).status_code == 401
    assert keyed.delete("/api/v1/admin/keys/01ARZ3NDEKTSV4RRFFQ69G5FAV",
                        headers=as_key(ADMIN)).status_code == 404
    forged = secret[:-4] + "AAAA"
    assert keyed.get("/api/v1/users/u1/memories", headers=as_key(forged)).status_code == 401


def test_read_only_keys_read_but_do_not_write(keyed):
    event_id = keyed.post("/api/v1/events", json=EVENT, headers=as_key(ACME)).json()["event_id"]
    reader = as_key(make_key(keyed, "acme", read_only=True)["secret"])
    query = {"user_id": "u1", "query": "launch codes"}
    assert keyed.post("/api/v1/retrieve", json=query, headers=reader).json()["results"]
    assert keyed.post("/api/v1/context", json=query, headers=reader).status_code == 200
    assert keyed.get(f"/api/v1/events/{event_id}", headers=reader).status_code == 200
    assert keyed.get("/api/v1/users/u1/memories", headers=reader).status_code == 200
    for method, path, body in (
            ("POST", "/api/v1/events", EVENT),
            ("POST", "/api/v1/events/batch", {"events": [EVENT]}),
            ("DELETE", f"/api/v1/events/{event_id}", None),
            ("DELETE", "/api/v1/memories/m1", None),
            ("POST", "/api/v1/forget", query),
            ("POST", "/api/v1/forget/confirm", {"token": "t", "ids": ["x"]})):
        answer = keyed.request(method, path, json=body, headers=reader)
        assert answer.status_code == 403, path
        assert "read-only" in answer.json()["error"]["message"]
    assert keyed.get(f"/api/v1/events/{event_id}", headers=reader).status_code == 200


def test_the_pipeline_cannot_commit_keys(keyed):
    forged = {"kind": "apikey", "id": "01ARZ3NDEKTSV4RRFFQ69G5FAV", "key_tenant": "acme",
              "secret_sha256": hashlib.sha256(b"x").hexdigest()}
    answer = keyed.post("/api/v1/admin/commit", json={"records": [forged]},
                        headers=as_key(ADMIN))
    assert answer.status_code == 400 and answer.json()["error"]["field"] == "records.0.kind"


def test_a_key_made_at_run_time_closes_an_open_node(tmp_path, embedder):
    home = tmp_path / "n"
    node = Node(make_settings(home, admin_key=ADMIN), embedder=embedder)
    node.wait_ready()
    with TestClient(create_app(node=node)) as client:
        secret = make_key(client, "acme")["secret"]
    node.close()
    node = Node(make_settings(home), embedder=embedder)  # no key configured any more
    node.wait_ready()
    try:
        with TestClient(create_app(node=node)) as client:
            assert client.post("/api/v1/events", json=EVENT).status_code == 401
            assert client.post("/api/v1/events", json=EVENT,
                               headers=as_key(secret)).status_code == 201
            assert client.get("/api/v1/admin/keys").status_code == 401
            assert client.get("/api/v1/admin/keys",
                              headers=as_key(secret)).status_code == 403
            assert client.get("/health").status_code == 200
    finally:
        node.close()


def test_an_open_node_makes_no_keys_without_an_admin_key(client):
    assert client.post("/api/v1/events", json=EVENT).status_code == 201  # open: no key needed
    assert client.get("/api/v1/admin/keys").json() == {"keys": []}
    answer = client.post("/api/v1/admin/keys", json={"tenant": "acme"})
    assert answer.status_code == 403 and "MEMOROSE_ADMIN_KEY" in answer.json()["error"]["message"]
    assert client.post("/api/v1/events", json=EVENT).status_code == 201  # still open


@pytest.fixture
def served_keyed(keyed_node) -> Iterator[str]:
    yield from serve_over_http(keyed_node)


def test_cli_makes_lists_and_revokes_keys(served_keyed, env, capsys):
    import httpx

    env.setenv("MEMOROSE_ADMIN_KEY", ADMIN)
    assert main(["keys", "create", "--tenant", "acme", "--read-only", "--name", "dash",
                 "--url", served_keyed]) == 0
    made = json.loads(capsys.readouterr().out)
    assert made["tenant"] == "acme" and made["read_only"] is True
    query = {"user_id": "u1", "query": "codes"}
    reader = as_key(made["secret"])
    assert httpx.post(served_keyed + "/api/v1/retrieve", json=query,
                      headers=reader).status_code == 404  # known key, unknown user
    env.setenv("MEMOROSE_URL", served_keyed)
    assert main(["keys", "list"]) == 0
    listed = capsys.readouterr().out
    assert made["key_id"] in listed and "dash" in listed and made["secret"] not in listed
    assert main(["keys", "revoke", made["key_id"], "--url", served_keyed]) == 0
    assert json.loads(capsys.readouterr().out)["revoked"] is True
    assert httpx.post(served_keyed + "/api/v1/retrieve", json=query,
                      headers=reader).status_code == 401
    env.setenv("MEMOROSE_ADMIN_KEY", ACME)  # a tenant key cannot manage keys
    assert main(["keys", "list"]) == 1
    assert "admin key" in capsys.readouterr().err


def test_a_revoke_holds_on_every_replica_once_applied(tmp_path, embedder):
    ports = [(free_port(), free_port()) for _ in range(2)]
    nodes = [Node(Settings(home=tmp_path / f"r{i}", port=port, raft_port=raft,
                           peers=tuple(f"127.0.0.1:{r}" for j, (_, r) in enumerate(ports)
                                       if j != i),
                           cluster_secret="s" * 32, admin_key=ADMIN), embedder=embedder)
             for i, (port, raft) in enumerate(ports)]
    try:
        for node in nodes:
            node.wait_ready()
        leader = next(n for n in nodes if n.status()["role"] == "leader")
        follower = next(n for n in nodes if n is not leader)
        with TestClient(create_app(node=leader)) as on_leader, \
                TestClient(create_app(node=follower)) as on_follower:
            made = make_key(on_leader, "acme")
            query = {"user_id": "nobody", "query": "x"}

            def answer() -> int:
                return on_follower.post("/api/v1/retrieve", json=query,
                                        headers=as_key(made["secret"])).status_code

            wait_until(lambda: follower.applied_index >= made["log_index"], what="key applied")
            assert answer() == 404  # the follower knows the key (and no such user)
            revoked = on_leader.delete(f"/api/v1/admin/keys/{made['key_id']}",
                                       headers=as_key(ADMIN)).json()
            wait_until(lambda: follower.applied_index >= revoked["log_index"],
                       what="revoke applied")
            assert answer() == 401
    finally:
        for node in nodes:
            node.close()
