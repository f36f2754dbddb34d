"""The Gemini provider, driven through the real google-genai client against a fake server."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace

import numpy as np
import pytest
from fake_gemini import FakeGemini, fake_vector

from memorose_dagster.errors import MemoroseError
from memorose_dagster.models import (
    Fact,
    GeminiClient,
    GeminiConfig,
    GeminiEmbedder,
    GeminiError,
    GeminiExtractor,
    GeminiOutputError,
)

EVENTS = [
    {"event_id": "e1", "content": "I moved to Lisbon last month.", "timestamp": 1_700_000_000,
     "user_id": "u1", "stream_id": "chat", "metadata": {"speaker": "Ana"}},
    {"event_id": "e2", "content": "I'm allergic to peanuts.", "timestamp": 1_700_000_100,
     "user_id": "u1", "stream_id": "chat", "metadata": {}},
]
FACT = {"subject": "Ana", "attribute": "city", "value": "Lisbon", "time": "2023-10",
        "confidence": 0.9, "source_event_ids": ["e1"], "text": "Ana lives in Lisbon."}
USAGE = {"promptTokenCount": 100, "candidatesTokenCount": 20, "thoughtsTokenCount": 5,
         "totalTokenCount": 125}


@pytest.fixture
def fake() -> Iterator[FakeGemini]:
    with FakeGemini() as server:
        yield server


@pytest.fixture
def config(fake: FakeGemini) -> GeminiConfig:
    env = {"GOOGLE_API_KEY": "test-key-123", "MEMOROSE_GEMINI_BASE_URL": fake.base_url,
           "MEMOROSE_GEMINI_RETRY_BASE_DELAY": "0.01", "MEMOROSE_GEMINI_RETRY_MAX_DELAY": "0.05",
           "MEMOROSE_GEMINI_MAX_RETRIES": "3", "MEMOROSE_GEMINI_TIMEOUT": "5"}
    return GeminiConfig.from_env(env)


def generate_requests(fake: FakeGemini) -> list:
    return [r for r in fake.requests if r.path.endswith(":generateContent")]


def test_extracts_valid_facts_with_json_mode(fake: FakeGemini, config: GeminiConfig) -> None:
    second = dict(FACT, attribute="allergy", value="peanuts", time=None, confidence=1,
                  source_event_ids=["e2", "e2"], text="Ana is allergic to peanuts.")
    fake.reply_json({"facts": [FACT, second]})
    facts = GeminiExtractor(config).extract_facts(EVENTS)
    assert facts == [
        Fact("Ana", "city", "Lisbon", "2023-10", 0.9, ["e1"], "Ana lives in Lisbon."),
        Fact("Ana", "allergy", "peanuts", None, 1.0, ["e2"], "Ana is allergic to peanuts."),
    ]
    [request] = fake.requests
    assert request.path == "/v1beta/models/gemini-2.5-flash:generateContent"
    generation = request.body["generationConfig"]
    assert generation["responseMimeType"] == "application/json"
    assert "facts" in generation["responseSchema"]["properties"]
    prompt = request.body["contents"][0]["parts"][0]["text"]
    assert "e1" in prompt and "peanuts" in prompt and "2023-11-14T22:13:20+00:00" in prompt


def test_api_key_reaches_server(fake: FakeGemini, config: GeminiConfig) -> None:
    fake.reply_json({"facts": []})
    assert GeminiExtractor(config).extract_facts(EVENTS[:1]) == []
    GeminiEmbedder(config).embed(["hello"])
    assert [r.headers["x-goog-api-key"] for r in fake.requests] == ["test-key-123"] * 2


def test_extraction_batches_events_without_mixing_users(fake: FakeGemini,
                                                        config: GeminiConfig) -> None:
    events = [dict(EVENTS[0], event_id=f"a{i}") for i in range(5)]
    events.insert(2, dict(EVENTS[0], event_id="b0", user_id="u2"))
    for _ in range(4):
        fake.reply_json({"facts": []})
    GeminiExtractor(replace(config, extract_batch=2)).extract_facts(events)
    prompts = [r.body["contents"][0]["parts"][0]["text"] for r in generate_requests(fake)]
    assert len(prompts) == 4  # a0-a1, a2-a3, a4, b0
    assert ["a4" in p for p in prompts] == [False, False, True, False]
    assert "b0" in prompts[3] and "u1" not in prompts[3]


def test_embeddings_are_batched_unit_float32(fake: FakeGemini, config: GeminiConfig) -> None:
    embedder = GeminiEmbedder(replace(config, embed_dim=16, embed_batch=4))
    texts = [f"text {i}" for i in range(10)]
    vectors = embedder.embed(texts)
    assert (embedder.name, embedder.dim) == ("gemini-embedding-001-16", 16)
    assert vectors.shape == (10, 16) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, rtol=1e-5)
    expected = np.array(fake_vector("text 7", 16))
    np.testing.assert_allclose(vectors[7], expected / np.linalg.norm(expected), rtol=1e-4)
    assert fake.paths() == ["/v1beta/models/gemini-embedding-001:batchEmbedContents"] * 3
    sizes = [len(r.body["requests"]) for r in fake.requests]
    assert sizes == [4, 4, 2]
    assert {q["outputDimensionality"] for r in fake.requests for q in r.body["requests"]} == {16}
    assert embedder.usage_metadata()["gemini_embedded_texts"] == 10
    assert embedder.embed([]).shape == (0, 16)


def test_embedding_of_wrong_dimension_is_an_output_error(fake: FakeGemini,
                                                         config: GeminiConfig) -> None:
    fake.enqueue(200, {"embeddings": [{"values": [0.1, 0.2]}]})
    with pytest.raises(GeminiOutputError, match="expected dimension 768"):
        GeminiEmbedder(config).embed(["hello"])


def test_retries_429_then_succeeds(fake: FakeGemini, config: GeminiConfig) -> None:
    fake.fail(429, times=2)
    fake.reply_json({"summary": "Ana is settling into life in Lisbon."})
    extractor = GeminiExtractor(config)
    assert extractor.summarise([{"id": "m1", "content": "Ana lives in Lisbon."}]).startswith("Ana")
    assert len(fake.requests) == 3
    assert extractor.usage_metadata()["gemini_retries"] == 2


def test_gives_up_on_503_after_max_retries(fake: FakeGemini, config: GeminiConfig) -> None:
    fake.fail_forever(503)
    with pytest.raises(GeminiError) as caught:
        GeminiExtractor(config).extract_facts(EVENTS)
    assert len(fake.requests) == config.max_retries + 1 == 4
    err = caught.value
    assert isinstance(err, MemoroseError) and (err.status, err.code) == (502, "llm_error")
    assert "gemini-2.5-flash" in err.message and "503 UNAVAILABLE" in err.message


def test_backoff_is_exponential_and_honours_retry_info(fake: FakeGemini,
                                                       config: GeminiConfig) -> None:
    delays: list[float] = []
    client = GeminiClient(replace(config, max_retries=4, retry_max_delay=1.0), sleep=delays.append)
    fake.fail(503, times=3)
    retry_info = {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "0.5s"}
    fake.fail(429, body={"error": {"code": 429, "status": "RESOURCE_EXHAUSTED",
                                   "message": "quota", "details": [retry_info]}})
    fake.reply_json({"summary": "ok"})
    GeminiExtractor(client=client).summarise([{"id": "m1", "content": "x"}])
    for delay, base in zip(delays, [0.01, 0.02, 0.04, 0.5], strict=True):
        assert base <= delay <= base * 1.25


def test_client_errors_are_not_retried(fake: FakeGemini, config: GeminiConfig) -> None:
    fake.fail(400)
    with pytest.raises(GeminiError, match="400 INVALID_ARGUMENT"):
        GeminiExtractor(config).summarise([{"id": "m1", "content": "x"}])
    assert len(fake.requests) == 1


def test_network_errors_are_retried_then_reported(config: GeminiConfig) -> None:
    with FakeGemini() as gone:
        url = gone.base_url  # closed on exit: connections are refused
    extractor = GeminiExtractor(replace(config, base_url=url, max_retries=1))
    with pytest.raises(GeminiError, match="after 2 attempts; last status network error"):
        extractor.summarise([{"id": "m1", "content": "x"}])


@pytest.mark.parametrize("output, complaint", [
    ("Sure! Here are the facts: none", "Expecting value"),
    (json.dumps([FACT]), "expected a JSON object"),
    (json.dumps({"facts": [{k: v for k, v in FACT.items() if k != "value"}]}), "'value'"),
    (json.dumps({"facts": [dict(FACT, source_event_ids=["e9"])]}), "not in the input"),
    (json.dumps({"facts": [dict(FACT, confidence=1.5)]}), "confidence"),
    (json.dumps({"facts": [dict(FACT, time="last spring")]}), "ISO date"),
])
def test_malformed_extraction_raises(fake: FakeGemini, config: GeminiConfig, output: str,
                                     complaint: str) -> None:
    fake.reply_text(output)
    with pytest.raises(GeminiOutputError, match=complaint) as caught:
        GeminiExtractor(config).extract_facts(EVENTS)
    assert "gemini-2.5-flash" in caught.value.message
    assert caught.value.details["snippet"] == output[:300]


def test_empty_candidate_is_an_output_error(fake: FakeGemini, config: GeminiConfig) -> None:
    fake.enqueue(200, {"candidates": [{"content": {"role": "model", "parts": []},
                                       "finishReason": "MAX_TOKENS"}]})
    with pytest.raises(GeminiOutputError, match="no text.*MAX_TOKENS"):
        GeminiExtractor(config).extract_facts(EVENTS)


def test_non_json_http_body_is_an_output_error(fake: FakeGemini, config: GeminiConfig) -> None:
    fake.enqueue(200, "<html>captive portal</html>")
    with pytest.raises(GeminiOutputError, match="not JSON"):
        GeminiExtractor(config).extract_facts(EVENTS)


def test_decide_updates(fake: FakeGemini, config: GeminiConfig) -> None:
    fact = Fact("Ana", "city", "Porto", "2024-02", 0.9, ["e7"], "Ana lives in Porto.")
    existing = [{"id": "m1", "content": "Ana lives in Lisbon."},
                {"id": "m2", "content": "Ana likes surfing."}]
    extractor = GeminiExtractor(config)
    fake.reply_json({"decisions": [{"action": "UPDATE", "memory_id": "m1", "reason": "moved"}]})
    [decision] = extractor.decide_updates(fact, existing)
    assert (decision.action, decision.memory_id) == ("UPDATE", "m1")
    prompt = fake.requests[0].body["contents"][0]["parts"][0]["text"]
    assert "Ana lives in Porto." in prompt and "m2" in prompt
    fake.reply_json({"decisions": [{"action": "UPDATE", "memory_id": "m9", "reason": "?"}]})
    with pytest.raises(GeminiOutputError, match="m9"):
        extractor.decide_updates(fact, existing)
    fake.reply_json({"decisions": []})
    with pytest.raises(GeminiOutputError, match="non-empty"):
        extractor.decide_updates(fact, existing)
    assert [d.action for d in extractor.decide_updates(fact, [])] == ["ADD"]
    assert len(fake.requests) == 3  # no call when nothing similar exists


def test_summary_must_be_non_empty(fake: FakeGemini, config: GeminiConfig) -> None:
    fake.reply_json({"summary": "  "})
    with pytest.raises(GeminiOutputError, match="summary"):
        GeminiExtractor(config).summarise([{"id": "m1", "content": "x"}])


def test_usage_is_counted_from_usage_metadata(fake: FakeGemini, config: GeminiConfig) -> None:
    client = GeminiClient(replace(config, price_in=1.0, price_out=10.0))
    extractor, embedder = GeminiExtractor(client=client), GeminiEmbedder(client=client)
    fake.reply_json({"facts": [FACT]}, usage=USAGE)
    fake.fail(429)
    fake.reply_json({"summary": "Ana lives in Lisbon."}, usage=USAGE)
    extractor.extract_facts(EVENTS)
    extractor.summarise([{"id": "m1", "content": "Ana lives in Lisbon."}])
    embedder.embed(["a", "b", "c"])
    meta = extractor.usage_metadata()
    assert meta == embedder.usage_metadata()
    assert meta == {
        "gemini_model": "gemini-2.5-flash", "gemini_embed_model": "gemini-embedding-001",
        "gemini_calls": 2, "gemini_embed_calls": 1, "gemini_embedded_texts": 3,
        "gemini_retries": 1, "gemini_prompt_tokens": 200, "gemini_output_tokens": 40,
        "gemini_thoughts_tokens": 10, "gemini_total_tokens": 250,
        "gemini_cost_usd": round((200 * 1.0 + 50 * 10.0) / 1e6, 6),
    }


def test_config_from_env() -> None:
    config = GeminiConfig.from_env({"GOOGLE_API_KEY": " k "})
    assert (config.api_key, config.base_url, config.model, config.embed_model) == (
        "k", None, "gemini-2.5-flash", "gemini-embedding-001")
    assert (config.embed_dim, config.max_retries, config.price_in, config.price_out) == (
        768, 4, 0.30, 2.50)
    custom = GeminiConfig.from_env({"GOOGLE_API_KEY": "k", "MEMOROSE_GEMINI_MODEL": "m",
                                    "MEMOROSE_GEMINI_EMBED_DIM": "256",
                                    "MEMOROSE_GEMINI_PRICE_OUT": "0.4"})
    assert (custom.model, custom.embed_dim, custom.price_out) == ("m", 256, 0.4)
    assert GeminiConfig.from_env({"GOOGLE_API_KEY": "k", "MEMOROSE_GEMINI_BASE_URL": "http://x",
                                  "MEMOROSE_GEMINI_MODEL": ""}).base_url == "http://x"
    with pytest.raises(ValueError, match="GOOGLE_API_KEY"):
        GeminiConfig.from_env({})
    with pytest.raises(ValueError, match="MEMOROSE_GEMINI_MAX_RETRIES"):
        GeminiConfig.from_env({"GOOGLE_API_KEY": "k", "MEMOROSE_GEMINI_MAX_RETRIES": "many"})
