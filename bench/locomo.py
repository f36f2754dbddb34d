"""Retrieval quality on the LoCoMo dev split, through the HTTP API, against plain BM25.

Replays every turn as one event (metadata `dia_id`, timestamp = the session's date), runs the
memory pipeline (the same Dagster assets the sensor runs, materialized in this process over the
whole log range), asks every question through `POST /api/v1/retrieve`, maps each result's
provenance back to `dia_id`s and scores the evidence. The baseline is BM25 over single raw turns
(a Tantivy index built in this process), computed in the same run.

    python bench/locomo.py ../shared/datasets/locomo/locomo-dev.json [--layers L1,L2]
        [--conversations 0,1,2] [--held-out 2]

Conversations 0 and 1 are for tuning and 2 is held out (``--held-out``): the table reports
each part, and the held-out one is the estimate for conversations never tuned on.

Evidence repair: "D8:6; D9:17" is split; "D:11:26" -> "D11:26"; "D30:05" -> "D30:5"; questions
with no evidence are skipped (counted in the header).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

CATEGORIES = {1: "multi-hop", 2: "temporal", 3: "open-domain", 4: "single-hop", 5: "adversarial"}
KS = (5, 10, 20)


def repair_evidence(evidence: list[str]) -> list[str]:
    out = []
    for item in evidence:
        for part in item.split(";"):
            match = re.fullmatch(r"D:?(\d+):0*(\d+)", part.strip())
            if match:
                out.append(f"D{match.group(1)}:{match.group(2)}")
    return out


def session_time(text: str) -> float:
    return datetime.strptime(text, "%I:%M %p on %d %B, %Y").replace(tzinfo=UTC).timestamp()


def turns(sample: dict) -> list[dict]:
    conv = sample["conversation"]
    sessions = sorted((int(k.split("_")[1]), k) for k in conv
                      if re.fullmatch(r"session_\d+", k))
    out = []
    for number, key in sessions:
        ts = session_time(conv[f"{key}_date_time"])
        for turn in conv[key]:
            text = f"{turn['speaker']}: {turn['text']}"
            if turn.get("blip_caption"):
                text += f" [shares a photo: {turn['blip_caption']}]"
            out.append({"user_id": sample["sample_id"], "stream_id": f"session_{number}",
                        "content": text, "timestamp": ts,
                        "metadata": {"dia_id": turn["dia_id"], "speaker": turn["speaker"]}})
    return out


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_node(home: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    log = (home / "node.log").open("wb")
    proc = subprocess.Popen([sys.executable, "-m", "memorose_dagster.cli", "serve", "--port",
                             str(port), "--raft-port", str(free_port()), "--data-dir",
                             str(home / "data")], stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if httpx.get(url + "/health", timeout=1).status_code == 200:
                return proc, url
        except httpx.TransportError:
            time.sleep(0.2)
    proc.kill()
    raise SystemExit("node did not start: " + (home / "node.log").read_text()[-2000:])


def ingest(url: str, events: list[dict]) -> int:
    last = 0
    with httpx.Client(timeout=60) as http:
        for i in range(0, len(events), 500):
            response = http.post(url + "/api/v1/events/batch", json={"events": events[i:i + 500]})
            response.raise_for_status()
            last = response.json()["log_index"]
    return last


def run_pipeline(url: str, until: int) -> float:
    import dagster as dg

    from assets import ALL_ASSETS
    from memorose_dagster.pipeline.partitions import range_run_config
    from memorose_dagster.pipeline.resources import ClusterResource, ModelResource

    started = time.perf_counter()
    result = dg.materialize(ALL_ASSETS, resources={"cluster": ClusterResource(urls=url),
                                                   "model": ModelResource()},
                            partition_key=datetime.now(UTC).strftime("%Y-%m-%d"),
                            run_config=range_run_config(0, until))
    if not result.success or not all(c.passed for c in result.get_asset_check_evaluations()):
        raise SystemExit("pipeline run failed or a check did not pass")
    return time.perf_counter() - started


def ask_api(url: str, user: str, question: str, top: int, layers: list[str] | None):
    body = {"user_id": user, "query": question, "top_k": top}
    if layers:
        body["layers"] = layers
    response = httpx.post(url + "/api/v1/retrieve", json=body, timeout=30)
    response.raise_for_status()
    return [([p["metadata"].get("dia_id") for p in r["provenance"]], len(r["content"]))
            for r in response.json()["results"]]


class Bm25Baseline:
    """Plain BM25 over single raw turns: Tantivy, default tokenizer, one doc per turn."""

    def __init__(self, events: list[dict], path: str):
        import tantivy

        builder = tantivy.SchemaBuilder()
        builder.add_text_field("user", stored=False, tokenizer_name="raw")
        builder.add_text_field("dia", stored=True, tokenizer_name="raw")
        builder.add_text_field("text", stored=True)
        self.schema = builder.build()
        self.index = tantivy.Index(self.schema, path=path)
        writer = self.index.writer(50_000_000, 1)
        for e in events:
            writer.add_document(tantivy.Document(user=e["user_id"], dia=e["metadata"]["dia_id"],
                                                 text=e["content"]))
        writer.commit()
        self.index.reload()

    def ask(self, user: str, question: str, top: int):
        import tantivy

        words = " ".join(w for w in re.findall(r"\w+", question.lower())
                         if w not in ("and", "or", "not"))
        query = tantivy.Query.boolean_query([
            (tantivy.Occur.Must, self.index.parse_query(words, ["text"])),
            (tantivy.Occur.Must, tantivy.Query.term_query(self.schema, "user", user))])
        searcher = self.index.searcher()
        out = []
        for _, address in searcher.search(query, top).hits:
            doc = searcher.doc(address)
            out.append(([doc["dia"][0]], len(doc["text"][0])))
        return out


def evidence_without_memory(url: str, data: list[dict]) -> set[str]:
    """Evidence turns the consolidator dropped: no L1 memory names them as a source."""
    missing = set()
    with httpx.Client(base_url=url, timeout=60) as http:
        for sample in data:
            user = sample["sample_id"]
            events = http.get("/api/v1/admin/records", params={"kind": "event",
                                                                "user_id": user}).json()
            dia = {e["event_id"]: e["metadata"]["dia_id"] for e in events["records"]}
            l1 = http.get("/api/v1/admin/records", params={"kind": "l1", "user_id": user}).json()
            covered = {dia[s] for m in l1["records"] for s in m["source_event_ids"]}
            evidence = {d for qa in sample["qa"] for d in repair_evidence(qa.get("evidence", []))}
            missing |= {f"{user}:{d}" for d in evidence - covered}
    return missing


def score(results, evidence: list[str]) -> dict[str, float]:
    row = {}
    for k in KS:
        found = {d for dias, _ in results[:k] for d in dias}
        row[f"R@{k}"] = len(found & set(evidence)) / len(set(evidence))
    row["Hit@10"] = float(bool({d for dias, _ in results[:10] for d in dias} & set(evidence)))
    row["chars@10"] = float(sum(chars for _, chars in results[:10]))
    return row


def table(name: str, rows: dict[str, list[dict[str, float]]]) -> list[str]:
    cols = [f"R@{k}" for k in KS] + ["Hit@10", "chars@10"]
    lines = []
    for cat in [*sorted(CATEGORIES), "all"]:
        items = rows[cat]
        if not items:
            continue
        label = "overall" if cat == "all" else f"{cat} {CATEGORIES[cat]}"
        means = [sum(r[c] for r in items) / len(items) for c in cols]
        cells = [f"{m:8.3f}" for m in means[:-1]] + [f"{means[-1]:9.0f}"]
        lines.append(f"{name:8} {label:15} {len(items):4} " + " ".join(cells))
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("dataset", type=Path)
    parser.add_argument("--layers", default="", help="comma-separated layers (default: all)")
    parser.add_argument("--conversations", default="",
                        help="comma-separated conversation indexes to run (default: all)")
    parser.add_argument("--held-out", default="2",
                        help="comma-separated conversation indexes never tuned on")
    args = parser.parse_args()
    data = json.loads(args.dataset.read_text())
    held_out = {int(x) for x in args.held_out.split(",") if x}
    for index, sample in enumerate(data):
        sample["split"] = "held-out" if index in held_out else "tuned"
    if args.conversations:
        data = [data[int(x)] for x in args.conversations.split(",")]
    layers = [x for x in args.layers.split(",") if x] or None
    with tempfile.TemporaryDirectory() as tmp:
        proc, url = start_node(Path(tmp))
        try:
            return evaluate(data, url, layers, tmp)
        finally:
            os.kill(proc.pid, signal.SIGTERM)
            proc.wait(timeout=30)


def evaluate(data: list[dict], url: str, layers: list[str] | None, tmp: str) -> int:
    events = [e for sample in data for e in turns(sample)]
    started = time.perf_counter()
    until = ingest(url, events)
    ingest_s = time.perf_counter() - started
    pipeline_s = run_pipeline(url, until)
    dropped = evidence_without_memory(url, data)
    baseline = Bm25Baseline(events, tempfile.mkdtemp(dir=tmp))
    rows: dict[str, dict] = defaultdict(lambda: defaultdict(list))
    latencies, skipped = [], 0
    for sample in data:
        for qa in sample["qa"]:
            evidence = repair_evidence(qa.get("evidence", []))
            if not evidence:
                skipped += 1
                continue
            t0 = time.perf_counter()
            ours = ask_api(url, sample["sample_id"], qa["question"], max(KS), layers)
            latencies.append(time.perf_counter() - t0)
            theirs = baseline.ask(sample["sample_id"], qa["question"], max(KS))
            for name, results in (("memorose", ours), ("bm25", theirs)):
                row = score(results, evidence)
                for part in ("all", sample["split"]):
                    rows[f"{name}:{part}"][qa["category"]].append(row)
                    rows[f"{name}:{part}"]["all"].append(row)
    latencies.sort()
    print(f"LoCoMo dev: {len(events)} turns, {len(rows['bm25:all']['all'])} questions "
          f"({skipped} without evidence skipped); layers={layers or 'all'}; "
          f"ingest {len(events) / ingest_s:,.0f} ev/s; pipeline {pipeline_s:.1f}s; retrieve p50 "
          f"{latencies[len(latencies) // 2] * 1000:.1f} ms; evidence turns without an L1 memory "
          f"(dropped as noise): {len(dropped)} {sorted(dropped)[:10]}")
    for part in ("tuned", "held-out", "all"):
        if not rows[f"bm25:{part}"]:
            continue
        convs = sorted({s["sample_id"] for s in data if part == "all" or s["split"] == part})
        print(f"\n{part}: {', '.join(convs)}")
        print(f"{'system':8} {'category':15} {'n':>4} " + " ".join(
            f"{c:>8}" for c in [f"R@{k}" for k in KS] + ["Hit@10"]) + f" {'chars@10':>9}")
        for name in ("memorose", "bm25"):
            print("\n".join(table(name, rows[f"{name}:{part}"])))
    return 0


if __name__ == "__main__":
    sys.exit(main())
