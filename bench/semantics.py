"""What Memorose knows is true now: hand-written scenarios scored through the HTTP API.

Each scenario (bench/scenarios/*.txt) is a short chat history of one user over several sessions
and the questions an agent would ask about it: knowledge updates (a city, job, partner or diet
that changed: the current value must come first, the old one stay reachable), preferences said
indirectly, facts spread over sessions, questions about time (relative dates resolved against
the day they were said), deletion (a forgotten fact must never come back) and questions the
history cannot answer (a calibrated score should tell them apart). The scenarios were written for
this benchmark, not taken from any dataset; ``split: check`` scenarios are held out from
tuning, and ``split: fresh`` ones were written after the last change and measured as they came.

A node is started on 127.0.0.1, every turn is ingested over HTTP (metadata ``dia_id`` =
``scenario:session.turn``), some events are forgotten, the pipeline runs (dg.materialize with a
ClusterResource over HTTP), more are forgotten, the pipeline runs again, and every question is
asked through ``POST /api/v1/retrieve`` and ``POST /api/v1/context``. Plain BM25 over single
turns (Tantivy, built in this process) is the baseline, in the same run.

    python bench/semantics.py [--split tune|check|fresh|all] [--scenarios DIR] [--fit] [--show N]

Scenario format: ``== id category split`` starts a scenario, ``@ YYYY-MM-DD HH:MM`` a session,
``Speaker: text`` is a turn, ``? kind question | +S.T key | -S.T key | date=...`` a question with
the evidence it needs (``+``: a result sourced from turn T of session S whose text contains
``key``; ``-``: a stale value that must not rank above the current one), ``x S.T key`` forgets
that turn before the pipeline runs, ``X S.T key`` after it.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import httpx
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.locomo import Bm25Baseline, ingest, run_pipeline, start_node  # noqa: E402

SCENARIOS = Path(__file__).resolve().parent / "scenarios"
TOP = 10
ANSWERABLE = ("current", "history", "pref", "agg", "when", "fact")


@dataclass
class Evidence:
    ref: str  # "session.turn"
    key: str  # lowercased text the result must contain ("" = any)


@dataclass
class Question:
    kind: str
    text: str
    plus: list[Evidence] = field(default_factory=list)
    minus: list[Evidence] = field(default_factory=list)
    date: str = ""


@dataclass
class Scenario:
    id: str
    category: str
    split: str
    turns: list[dict] = field(default_factory=list)
    questions: list[Question] = field(default_factory=list)
    forget_before: list[Evidence] = field(default_factory=list)
    forget_after: list[Evidence] = field(default_factory=list)


def _evidence(token: str) -> Evidence:
    ref, _, key = token[1:].strip().partition(" ")
    return Evidence(ref, key.strip().lower())


def parse(text: str) -> list[Scenario]:
    scenarios: list[Scenario] = []
    session, stamp, turn = 0, 0.0, 0
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("== "):
            sid, category, split = line[3:].split()
            scenarios.append(Scenario(sid, category, split))
            session = 0
        elif line.startswith("@ "):
            session += 1
            turn = 0
            stamp = datetime.strptime(line[2:].strip(), "%Y-%m-%d %H:%M").replace(
                tzinfo=UTC).timestamp()
        elif line.startswith("? "):
            kind, _, rest = line[2:].partition(" ")
            parts = [p.strip() for p in rest.split("|")]
            q = Question(kind, parts[0])
            for part in parts[1:]:
                if part.startswith("+"):
                    q.plus.append(_evidence(part))
                elif part.startswith("-"):
                    q.minus.append(_evidence(part))
                elif part.startswith("date="):
                    q.date = part[5:].strip()
            scenarios[-1].questions.append(q)
        elif line[:2] in ("x ", "X "):
            target = scenarios[-1].forget_before if line[0] == "x" else scenarios[-1].forget_after
            target.append(_evidence(" " + line[2:]))
        else:
            turn += 1
            s = scenarios[-1]
            speaker = line.split(":", 1)[0]
            s.turns.append({"user_id": s.id, "stream_id": f"session_{session}", "content": line,
                            "timestamp": stamp + 60 * turn,
                            "metadata": {"dia_id": f"{s.id}:{session}.{turn}",
                                         "speaker": speaker}})
    return scenarios


def with_background(scenario: Scenario, template: str) -> None:
    """Everyday chat of the same user before the scenario's own sessions (dia ids ``bS.T``)."""
    name = next(t["metadata"]["speaker"] for t in scenario.turns
                if t["metadata"]["speaker"] != "Assistant")
    (chat,) = parse(f"== bg _ _\n{template.replace('{name}', name)}")
    for turn in chat.turns:
        session_turn = turn["metadata"]["dia_id"].split(":")[1]
        scenario.turns.insert(0, {**turn, "user_id": scenario.id,
                                  "stream_id": "bg_" + turn["stream_id"],
                                  "metadata": {**turn["metadata"],
                                               "dia_id": f"{scenario.id}:b{session_turn}"}})
    scenario.turns.sort(key=lambda t: t["timestamp"])


def load(directory: Path, split: str) -> list[Scenario]:
    found = [s for path in sorted(directory.glob("*.txt")) for s in parse(path.read_text())]
    background = directory / "background.tpl"
    for s in found if background.exists() else ():
        with_background(s, background.read_text())
    ids = [s.id for s in found]
    assert len(ids) == len(set(ids)), "scenario ids must be unique"
    for s in found:  # a typo in a reference would silently score as a miss
        said = {t["metadata"]["dia_id"].split(":")[1]: t["content"].lower() for t in s.turns}
        for ev in [e for q in s.questions for e in q.plus + q.minus] + s.forget_before \
                + s.forget_after:
            assert ev.ref in said and ev.key in said[ev.ref], (s.id, ev)
    return [s for s in found if split == "all" or s.split == split]


@dataclass
class Hit:
    dias: list[str]
    content: str
    score: float


def matches(hit: Hit, sid: str, ev: Evidence) -> bool:
    return f"{sid}:{ev.ref}" in hit.dias and ev.key in hit.content.lower()


def first(hits: list[Hit], sid: str, evs: list[Evidence]) -> int | None:
    return next((i for i, h in enumerate(hits) if any(matches(h, sid, e) for e in evs)), None)


class Memorose:
    def __init__(self, url: str):
        self.http = httpx.Client(base_url=url, timeout=60)
        self.latencies: list[float] = []

    def ask(self, user: str, question: str) -> list[Hit]:
        t0 = time.perf_counter()
        response = self.http.post("/api/v1/retrieve", json={"user_id": user, "query": question,
                                                             "top_k": TOP})
        self.latencies.append(time.perf_counter() - t0)
        response.raise_for_status()
        return [Hit([p["metadata"].get("dia_id") for p in r["provenance"]], r["content"],
                    float(r.get("relevance", r["score"]))) for r in response.json()["results"]]

    def signals(self, user: str, question: str) -> list[tuple[Hit, list[float]]]:
        """Each result with the features its relevance is computed from."""
        response = self.http.post("/api/v1/retrieve", json={
            "user_id": user, "query": question, "top_k": TOP, "explain": True})
        response.raise_for_status()
        return [(Hit([p["metadata"].get("dia_id") for p in r["provenance"]], r["content"],
                     r["relevance"]), list(r["why"]["relevance"].values()))
                for r in response.json()["results"]]

    def context(self, user: str, question: str) -> list[str]:
        response = self.http.post("/api/v1/context", json={"user_id": user, "query": question,
                                                           "max_tokens": 300})
        response.raise_for_status()
        return response.json()["context"].splitlines()[1:]


class Baseline:
    def __init__(self, events: list[dict], path: str):
        self.bm25 = Bm25Baseline(events, path)
        self.text = {e["metadata"]["dia_id"]: e["content"] for e in events}

    def ask(self, user: str, question: str) -> list[Hit]:
        import tantivy

        words = " ".join(w for w in question.lower().replace("?", " ").split()
                         if w.isalnum() and w not in ("and", "or", "not"))
        query = tantivy.Query.boolean_query([
            (tantivy.Occur.Must, self.bm25.index.parse_query(words, ["text"])),
            (tantivy.Occur.Must, tantivy.Query.term_query(self.bm25.schema, "user", user))])
        searcher = self.bm25.index.searcher()
        out = []
        for score, address in searcher.search(query, TOP).hits:
            dia = searcher.doc(address)["dia"][0]
            out.append(Hit([dia], self.text[dia], score))
        return out


def auc(positive: list[float], negative: list[float]) -> float:
    """Probability that an answerable question's top score beats an unanswerable one's."""
    if not positive or not negative:
        return float("nan")
    wins = sum((p > n) + 0.5 * (p == n) for p in positive for n in negative)
    return wins / (len(positive) * len(negative))


def logistic_fit(x: np.ndarray, y: np.ndarray, l2: float = 1.0, steps: int = 50) -> np.ndarray:
    """Logistic regression by Newton's method with a small L2 penalty (not on the bias)."""
    x = np.hstack([np.ones((len(x), 1)), x])
    w = np.zeros(x.shape[1])
    penalty = l2 * np.diag([0.0] + [1.0] * (x.shape[1] - 1))
    for _ in range(steps):
        p = 1.0 / (1.0 + np.exp(-x @ w))
        gradient = x.T @ (p - y) + penalty @ w
        hessian = x.T @ (x * (p * (1 - p))[:, None]) + penalty
        w -= np.linalg.solve(hessian, gradient)
    return w


def fit_relevance(system: Memorose, scenarios: list[Scenario]) -> None:
    """Fit relevance's coefficients on the tune split's results (label: the result carries the
    question's evidence) and report the top result's AUC, answerable vs not, per split."""
    from memorose_dagster.memory.relevance import relevance

    rows: dict[str, list[tuple[bool, list[tuple[bool, list[float]]]]]] = defaultdict(list)
    for s in scenarios:
        for q in s.questions:
            if q.kind not in ANSWERABLE and q.kind != "none":
                continue
            ranked = [(any(matches(h, s.id, e) for e in q.plus), f)
                      for h, f in system.signals(s.id, q.text)]
            rows[s.split].append((q.kind != "none", ranked))
    x = np.array([f for _, ranked in rows["tune"] for _, f in ranked])
    y = np.array([float(hit) for _, ranked in rows["tune"] for hit, _ in ranked])
    w = logistic_fit(x, y)
    print(f"\nrelevance fit on tune ({len(y)} results, {int(y.sum())} with evidence): "
          f"COEFFICIENTS = ({', '.join(f'{c:.2f}' for c in w)})")
    names = ("coverage", "cosine", "share", "margin")
    for split in ("tune", "check"):
        top = [(answerable, ranked[0][1]) for answerable, ranked in rows[split] if ranked]
        pos = [f for a, f in top if a]
        neg = [f for a, f in top if not a]
        single = "  ".join(f"{n} {auc([p[i] for p in pos], [q[i] for q in neg]):.3f}"
                           for i, n in enumerate(names))
        print(f"{split}: AUC top relevance, fitted {auc([relevance(*p, coefficients=tuple(w)) for p in pos], [relevance(*q, coefficients=tuple(w)) for q in neg]):.3f}, "  # noqa: E501
              f"as shipped {auc([relevance(*p) for p in pos], [relevance(*q) for q in neg]):.3f}"
              f"; single features: {single}")


def is_filler(line: str) -> bool:
    from memorose_dagster.memory import text

    said = line.split("] ", 1)[-1].split(" / ", 1)[0]
    said = said.split(": ", 1)[-1]
    return len(text.content_words(said)) < 2


def score_system(system, scenarios: list[Scenario], forgotten: dict[str, list[str]],
                 with_context: bool) -> dict[str, list[float]]:
    rows: dict[str, list[float]] = defaultdict(list)
    for s in scenarios:
        for q in s.questions:
            hits = system.ask(s.id, q.text)
            if q.kind in ANSWERABLE:
                rows["hit@1"].append(float(first(hits, s.id, q.plus) == 0))
                rows["auc+"].append(hits[0].score if hits else 0.0)
            if q.kind == "none":
                rows["auc-"].append(hits[0].score if hits else 0.0)
            if q.kind == "current":
                cur, old = first(hits, s.id, q.plus), first(hits, s.id, q.minus)
                rows["current@1"].append(float(cur == 0))
                rows["current@3"].append(float(cur is not None and cur < 3))
                rows["stale_above"].append(float(old is not None and (cur is None or old < cur)))
                if with_context:
                    lines = [x for x in system.context(s.id, q.text) if "(superseded)" not in x]
                    rows["ctx_current_first"].append(float(bool(lines) and any(
                        e.key in lines[0].lower() for e in q.plus)))
                    rows["ctx_filler"].append(float(any(is_filler(x) for x in lines)))
            elif q.kind == "history":
                at = first(hits, s.id, q.plus)
                rows["history@10"].append(float(at is not None))
            elif q.kind == "pref":
                at = first(hits, s.id, q.plus)
                rows["pref@1"].append(float(at == 0))
                rows["pref@3"].append(float(at is not None and at < 3))
            elif q.kind == "agg":
                found = sum(any(matches(h, s.id, e) for h in hits) for e in q.plus)
                rows["agg_facts@10"].append(found / len(q.plus))
            elif q.kind == "when":
                at = first(hits[:5], s.id, q.plus)
                rows["when_ev@5"].append(float(at is not None))
                rows["when_date@5"].append(float(any(
                    any(matches(h, s.id, e) for e in q.plus) and q.date.lower() in h.content.lower()
                    for h in hits[:5])))
            elif q.kind == "fact":
                at = first(hits, s.id, q.plus)
                rows["fact@3"].append(float(at is not None and at < 3))
            if forgotten.get(s.id):
                keys = forgotten[s.id]
                rows["leaks"].append(float(sum(any(k in h.content.lower() for k in keys)
                                               for h in hits)))
    return rows


METRICS = ["current@1", "current@3", "stale_above", "history@10", "pref@1", "pref@3",
           "agg_facts@10", "when_ev@5", "when_date@5", "fact@3", "hit@1", "ctx_current_first",
           "ctx_filler", "leaks", "AUC"]


def summary(rows: dict[str, list[float]]) -> dict[str, tuple[float, int]]:
    out = {}
    for metric in METRICS:
        if metric == "AUC":
            out[metric] = (auc(rows["auc+"], rows["auc-"]), len(rows["auc-"]))
        elif metric == "leaks":
            out[metric] = (sum(rows[metric]), len(rows[metric]))
        elif rows.get(metric):
            out[metric] = (sum(rows[metric]) / len(rows[metric]), len(rows[metric]))
    return out


def leaks_now(system: Memorose, scenarios: list[Scenario],
              forgotten: dict[str, list[str]]) -> int:
    """Results that still carry a forgotten fact, over every question of its scenario."""
    total = 0
    for s in scenarios:
        for q in s.questions if forgotten.get(s.id) else ():
            total += sum(any(k in h.content.lower() for k in forgotten[s.id])
                         for h in system.ask(s.id, q.text))
    return total


def forget(http: httpx.Client, ids: dict[str, str], s: Scenario, evs: list[Evidence]) -> None:
    for ev in evs:
        http.delete(f"/api/v1/events/{ids[f'{s.id}:{ev.ref}']}").raise_for_status()


def evaluate(scenarios: list[Scenario], url: str, tmp: str, show: int = 0,
             fit: bool = False) -> None:
    events = [t for s in scenarios for t in s.turns]
    until = ingest(url, events)
    ours = Memorose(url)
    ids = {}
    for s in scenarios:
        page = ours.http.get("/api/v1/admin/records", params={"kind": "event", "user_id": s.id})
        ids |= {e["metadata"]["dia_id"]: e["event_id"] for e in page.json()["records"]}
    forgotten = {s.id: [e.key for e in s.forget_before + s.forget_after] for s in scenarios
                 if s.forget_before or s.forget_after}
    for s in scenarios:
        forget(ours.http, ids, s, s.forget_before)
    early = {s.id: [e.key for e in s.forget_before] for s in scenarios if s.forget_before}
    leaks_raw = leaks_now(ours, scenarios, early)
    t0 = time.perf_counter()
    run_pipeline(url, until)
    pipeline_s = time.perf_counter() - t0
    leaks_derived = leaks_now(ours, scenarios, early)
    for s in scenarios:
        forget(ours.http, ids, s, s.forget_after)
    late = {s.id: [e.key for e in s.forget_after] for s in scenarios if s.forget_after}
    leaks_after_forget = leaks_now(ours, scenarios, late)
    run_pipeline(url, until)
    ours.latencies.clear()
    baseline = Baseline(events, tempfile.mkdtemp(dir=tmp))
    questions = sum(len(s.questions) for s in scenarios)
    print(f"semantics: {len(scenarios)} scenarios, {len(events)} turns, {questions} questions; "
          f"pipeline {pipeline_s:.1f}s; leaks of forgotten facts: before the pipeline "
          f"{leaks_raw}, after it {leaks_derived}, forgotten after it {leaks_after_forget}")
    for split in ("tune", "check", "fresh", "all"):
        part = [s for s in scenarios if split == "all" or s.split == split]
        if not part:
            continue
        mine = summary(score_system(ours, part, forgotten, True))
        theirs = summary(score_system(baseline, part, forgotten, False))
        print(f"\nsplit={split} ({len(part)} scenarios)")
        print(f"{'metric':20} {'n':>4} {'memorose':>9} {'bm25':>9}")
        for metric in METRICS:
            if metric in mine:
                n = mine[metric][1]
                other = f"{theirs[metric][0]:9.3f}" if metric in theirs else f"{'-':>9}"
                print(f"{metric:20} {n:4} {mine[metric][0]:9.3f} {other}")
    if fit:
        fit_relevance(ours, scenarios)
    for s in scenarios if show else ():
        for q in s.questions:
            print(f"\n[{s.id} {q.kind}] {q.text}")
            for h in ours.ask(s.id, q.text)[:show]:
                print(f"   {h.score:.3f} {h.content[:150]}")
    lat = sorted(ours.latencies)
    print(f"\nretrieve p50 {lat[len(lat) // 2] * 1000:.1f} ms over {len(lat)} questions")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--split", default="all", choices=("tune", "check", "fresh", "all"))
    parser.add_argument("--scenarios", type=Path, default=SCENARIOS)
    parser.add_argument("--show", type=int, default=0, help="print each question's top N")
    parser.add_argument("--fit", action="store_true",
                        help="fit relevance's coefficients on the tune split and report them")
    args = parser.parse_args()
    scenarios = load(args.scenarios, args.split)
    with tempfile.TemporaryDirectory() as tmp:
        proc, url = start_node(Path(tmp))
        try:
            evaluate(scenarios, url, tmp, args.show, args.fit)
        finally:
            os.kill(proc.pid, signal.SIGTERM)
            proc.wait(timeout=30)
    return 0


if __name__ == "__main__":
    sys.exit(main())
