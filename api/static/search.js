// Search playground: a retrieve (with explain) or a context request, and why each result
// scored what it did: BM25 and vector signals, graph expansion, the fused score, the factors.
import { api, append, clear, el, field, notice, number, select, userPicker, when } from "./core.js";

const FACTOR_NAMES = {
  layer: "layer", superseded: "superseded", importance: "importance",
  time_question: "dated, time question", in_range: "in date range", graph: "graph link",
  speaker: "speaker named",
};

function bar(value, max, label) {
  const width = max > 0 ? Math.max(0, Math.min(1, value / max)) : 0;
  const fill = el("span.fill");
  fill.style.width = `${(width * 100).toFixed(1)}%`;
  return el("span.bar", { title: label }, fill);
}

function why(result) {
  const w = result.why;
  if (!w) return el("td.muted", { text: "–" });
  const factors = Object.entries(w.factors).filter(([, v]) => v !== 1);
  return el("td.why", {},
    el("div", {}, el("span.k", { text: "BM25" }),
       bar(w.text, 0.7, "share of the fused score from BM25"),
       ` ${w.bm25 === null ? "no match" : number(w.bm25, 2)} → ${number(w.text)}`),
    el("div", {}, el("span.k", { text: "vector" }),
       bar(w.vector_part, 0.3, "share of the fused score from the vector"),
       ` cos ${w.vector === null ? "–" : number(w.vector)} → ${number(w.vector_part)}`),
    w.graph ? el("div", {}, el("span.k", { text: "graph" }),
                 w.graph === "expanded" ? "found through an entity the query names" :
                   "linked to an entity the query names") : null,
    el("div", {}, el("span.k", { text: "fused" }), ` ${number(w.fused)}`,
       factors.length ? ` × ${factors.map(([k, v]) => `${FACTOR_NAMES[k] || k} ${number(v)}`)
         .join(" × ")}` : " (no factor applied)",
       ` = ${number(w.score, 4)}`),
    el("div.muted", { text: "recency: none in ranking (age acts through decay)" }));
}

function resultsTable(results, explained) {
  const byId = new Map((explained || []).map((r) => [r.id, r]));
  return el("table.list#search-results", {},
    el("thead", {}, el("tr", {}, ["#", "Layer", "Content", "Score", "Why", "Provenance"]
      .map((h) => el("th", { text: h })))),
    el("tbody", {}, results.map((r, i) => el("tr", {},
      el("td.num", { text: i + 1 }),
      el("td", { text: r.layer }),
      el("td", {}, r.layer === "L0" ? el("span", { text: r.content || "" }) :
        el("a", { href: `#/memory/${encodeURIComponent(r.id)}`, text: r.content || r.id }),
        r.superseded_by ? el("span.badge.old", { text: "superseded" }) : null),
      el("td.num.score", { text: number(r.score, 4) }),
      why(byId.get(r.id) || r),
      el("td", { text: (r.provenance || []).map((p) => `${p.stream_id} ${when(p.timestamp)}`)
        .join("; ") })))));
}

export async function searchPage(root, { params }) {
  const { picker, users } = await userPicker(params.get("user"));
  append(root, el("h1", { text: "Search playground" }));
  if (!users.length) { root.append(notice("No users yet.", "info")); return; }
  const input = el("input#search-query", { name: "query", required: true, size: 50,
                                           placeholder: "what do I know about…",
                                           value: params.get("q") || "" });
  const layers = ["L0", "L1", "L2"].map((layer) => el("label.check", {},
    el("input", { type: "checkbox", name: "layers", value: layer, checked: true }), layer));
  const form = el("form.filters#search-form", {},
    field("User", picker), field("Query", input),
    field("Mode", select("mode", [["retrieve", "retrieve"], ["context", "context"]], "retrieve")),
    field("Top k", el("input", { name: "top_k", type: "number", min: 1, max: 100, value: 10 })),
    field("Max tokens", el("input", { name: "max_tokens", type: "number", min: 16, max: 32000,
                                      value: 1000 })),
    field("Stream", el("input", { name: "stream_id", placeholder: "any" })),
    el("fieldset.layers", {}, el("legend", { text: "Layers" }), layers),
    el("button#search-run", { type: "submit", text: "Run" }));
  const out = el("div#search-out");
  root.append(form, out);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const data = new FormData(form);
    const chosen = data.getAll("layers");
    const base = { user_id: picker.value, query: input.value };
    if (data.get("stream_id").trim()) base.stream_id = data.get("stream_id").trim();
    if (chosen.length && chosen.length < 3) base.layers = chosen;
    clear(out).append(el("p.muted", { text: "Running…" }));
    try {
      if (data.get("mode") === "context") {
        const started = performance.now();
        const context = await api("/api/v1/context", { method: "POST",
          body: { ...base, max_tokens: Number(data.get("max_tokens")) } });
        const took = performance.now() - started;
        const explained = await api("/api/v1/retrieve", { method: "POST",
          body: { ...base, top_k: 50, explain: true } });
        clear(out).append(
          el("p.muted", { text: `${context.tokens} tokens, ${context.memories.length} ` +
                                `memories, ${took.toFixed(0)} ms` }),
          el("pre.context#context-text", { text: context.context || "(nothing)" }),
          resultsTable(context.memories, explained.results));
      } else {
        const answer = await api("/api/v1/retrieve", { method: "POST",
          body: { ...base, top_k: Number(data.get("top_k")), explain: true } });
        clear(out).append(el("p.muted", { text: `${answer.results.length} results, ` +
                                                 `${answer.took_ms} ms on the node` }),
                          resultsTable(answer.results));
      }
    } catch (error) {
      clear(out).append(notice(error.message));
    }
  });
  if (input.value) form.requestSubmit();
}
