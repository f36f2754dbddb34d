// Memories: a user's memories filtered and paged, one memory with its supersede history and
// provenance chain, and forgetting (by query, or one memory) with a preview and a confirm.
import { api, append, clear, el, field, notice, number, query, select, session, userPicker,
         when } from "./core.js";

const PAGE = 50;
const MAX_REQUESTS = 20; // a sparse filter keeps reading pages until it has one page to show

function toSeconds(day, endOfDay) {
  if (!day) return "";
  const seconds = Date.parse(`${day}T00:00:00Z`) / 1000;
  return Number.isNaN(seconds) ? "" : seconds + (endOfDay ? 86400 : 0);
}

function memoryRow(memory) {
  return el("tr", {},
    el("td", {}, el("a", { href: `#/memory/${encodeURIComponent(memory.id)}`,
                           text: memory.content.slice(0, 240) })),
    el("td", { text: memory.layer }),
    el("td", { text: memory.stream_id || "" }),
    el("td.num", { text: number(memory.importance, 2) }),
    el("td", { text: when(memory.valid_from || memory.created_at) }),
    el("td", {}, memory.superseded_by ? el("span.badge.old", { text: "superseded" }) :
      el("span.badge.live", { text: "current" })));
}

export async function memoriesPage(root, { params }) {
  const { picker, users } = await userPicker(params.get("user"));
  append(root, el("h1", { text: "Memories" }));
  if (!users.length) {
    root.append(notice("No users yet: ingest events through POST /api/v1/events.", "info"));
    return;
  }
  const form = el("form.filters#memory-filters", {},
    field("User", picker),
    field("Layer", select("layer", [["L1", "L1 memories"], ["L2", "L2 insights"]],
                          params.get("layer") || "L1")),
    field("Stream", el("input", { name: "stream_id", placeholder: "any",
                                  value: params.get("stream") || "" })),
    field("From", el("input", { name: "since", type: "date" })),
    field("To", el("input", { name: "until", type: "date" })),
    field("Superseded", select("superseded", [["any", "any"], ["no", "current only"],
                                              ["yes", "superseded only"]], "any")),
    field("Min importance", el("input", { name: "min_importance", type: "number", min: 0,
                                          max: 1, step: 0.05, placeholder: "0" })),
    el("button", { type: "submit", text: "Filter" }));
  const status = el("p.muted.status");
  const body = el("tbody");
  const table = el("table.list#memory-list", {},
    el("thead", {}, el("tr", {}, ["Content", "Layer", "Stream", "Importance", "Valid from",
                                  ""].map((h) => el("th", { text: h })))), body);
  const more = el("button#more", { type: "button", text: "More", hidden: true });
  root.append(form, status, table, more, forgetByQuery(picker));

  let cursor = "";
  let scanned = 0;
  let shown = 0;
  async function load(reset) {
    const data = new FormData(form);
    if (reset) { cursor = ""; scanned = 0; shown = 0; clear(body); }
    const filters = {
      layer: data.get("layer"), stream_id: data.get("stream_id").trim(),
      since: toSeconds(data.get("since"), false), until: toSeconds(data.get("until"), true),
      superseded: data.get("superseded"), min_importance: data.get("min_importance"),
    };
    more.hidden = true;
    status.textContent = "Loading…";
    let found = 0;
    for (let i = 0; i < MAX_REQUESTS && found < PAGE && cursor !== null; i++) {
      const page = await api(`/dashboard/api/users/${encodeURIComponent(data.get("user_id"))}` +
                             `/memories${query({ ...filters, cursor, limit: PAGE - found })}`);
      for (const memory of page.memories) body.append(memoryRow(memory));
      found += page.memories.length;
      scanned += page.scanned;
      cursor = page.next_cursor;
    }
    shown += found;
    more.hidden = cursor === null;
    status.textContent = `${shown} shown, ${scanned} read` +
      (cursor === null ? " (all)" : ": more to read");
  }
  form.addEventListener("submit", (event) => { event.preventDefault(); load(true); });
  more.addEventListener("click", () => load(false));
  await load(true);
}

function forgetByQuery(picker) {
  const input = el("input#forget-query", { name: "query", placeholder: "what to forget",
                                           required: true });
  const out = el("div.forget-out");
  const form = el("form.forget#forget-form", {},
    el("h2", { text: "Forget by query" }),
    el("p.muted", { text: "Preview what a query finds, tick what to forget, then confirm. " +
                          "Nothing changes before you confirm." }),
    input, el("button", { type: "submit", text: "Preview" }), out);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    clear(out);
    if (session.who.read_only) { out.append(notice("This key is read-only.")); return; }
    const preview = await api("/api/v1/forget", { method: "POST",
      body: { user_id: picker.value, query: input.value, top_k: 10 } });
    if (!preview.candidates.length) { out.append(notice("Nothing found.", "info")); return; }
    const boxes = preview.candidates.map((c) => el("input", { type: "checkbox", value: c.id,
                                                             "data-id": c.id }));
    const list = el("ul.candidates#forget-candidates", {}, preview.candidates.map((c, i) =>
      el("li", {}, el("label", {}, boxes[i], ` ${c.layer} · ${number(c.score)} · `,
                      el("span", { text: c.content.slice(0, 200) })))));
    const confirm = el("button.danger#forget-confirm", { type: "button", disabled: true,
                                                         text: "Forget selected" });
    const update = () => {
      const n = boxes.filter((b) => b.checked).length;
      confirm.disabled = n === 0;
      confirm.textContent = n ? `Yes, forget ${n} for good` : "Forget selected";
    };
    boxes.forEach((b) => b.addEventListener("change", update));
    confirm.addEventListener("click", async () => {
      const ids = boxes.filter((b) => b.checked).map((b) => b.value);
      const report = await api("/api/v1/forget/confirm", { method: "POST",
                                                           body: { token: preview.token, ids } });
      clear(out).append(forgetReport(report));
    });
    out.append(el("p", { text: `Token valid until ${when(preview.expires_at)}.` }), list,
               confirm);
  });
  return form;
}

function forgetReport(report) {
  const names = (items) => items.map((i) => `${i.kind} ${i.id}`).join(", ") || "none";
  return el("div.report#forget-report", { role: "status" },
    el("p", { text: `Forgotten: ${names(report.forgotten)}` }),
    el("p", { text: `Also removed (derived only from it): ${names(report.cascaded)}` }),
    el("p", { text: `Rewritten without it: ${names(report.updated)}` }),
    el("p.muted", { text: `Log index ${report.log_index ?? "–"}` }));
}

function facts(memory) {
  const rows = [
    ["Id", memory.id], ["Layer", memory.layer], ["User", memory.user_id],
    ["Stream", memory.stream_id], ["Importance", number(memory.importance, 3)],
    ["Valid from", when(memory.valid_from)], ["Valid to", when(memory.valid_to)],
    ["Created", when(memory.created_at)], ["Date said", memory.time_label],
    ["Topic", memory.topic], ["Keywords", (memory.keywords || []).join(", ")],
    ["Entities", (memory.entities || []).join(", ")], ["Pinned", memory.pinned ? "yes" : ""],
    ["Derivation", memory.derivation], ["Log index", memory.log_index],
  ];
  return el("dl.facts", {}, rows.filter(([, v]) => v !== undefined && v !== null && v !== "")
    .map(([k, v]) => [el("dt", { text: k }), el("dd", { text: String(v) })]));
}

function link(memory, note) {
  return el("li", {}, el("a", { href: `#/memory/${encodeURIComponent(memory.id)}`,
                                text: memory.content ? memory.content.slice(0, 200) : memory.id }),
            note ? el("span.muted", { text: ` ${note}` }) : null);
}

function eventTable(events) {
  return el("table.list.events", {},
    el("thead", {}, el("tr", {}, ["Event", "Stream", "Time", "Content", "Metadata"]
      .map((h) => el("th", { text: h })))),
    el("tbody", {}, events.map((e) => el("tr", {},
      el("td.mono", { text: e.event_id }), el("td", { text: e.stream_id }),
      el("td", { text: when(e.timestamp) }), el("td", { text: e.content || "" }),
      el("td.mono", { text: JSON.stringify(e.metadata || {}) })))));
}

export async function memoryPage(root, { arg }) {
  const chain = await api(`/dashboard/api/memories/${encodeURIComponent(arg)}/history`);
  const m = chain.memory;
  append(root,
    el("p.crumbs", {}, el("a", { href: "#/memories", text: "Memories" }), ` / ${m.layer}`),
    el("h1", { text: m.layer === "L2" ? "Insight" : "Memory" }),
    el("blockquote.content#memory-content", { text: m.content }),
    m.superseded_by ? notice("Superseded: a newer memory holds the current value.", "info")
      : null,
    facts(m));

  const history = el("section#supersede-history", {}, el("h2", { text: "Supersede history" }));
  if (!chain.older.length && !chain.newer.length) {
    history.append(el("p.muted", { text: "No other version." }));
  } else {
    history.append(el("ol.history", {},
      [...chain.older].reverse().map((o) => link(o, "(older)")),
      el("li.this", { text: `${m.content.slice(0, 200)} (this one)` }),
      chain.newer.map((n) => link(n, n.superseded_by ? "(newer)" : "(current)"))));
  }
  root.append(history);

  const provenance = el("section#provenance", {}, el("h2", { text: "Provenance" }));
  if (m.layer === "L2") {
    provenance.append(el("h3", { text: `L2 insight ← ${chain.members.length} L1 memories` }),
      el("ul.members", {}, chain.members.map((member) => member.missing ?
        el("li.muted", { text: `${member.id} (forgotten)` }) :
        link(member, `← ${member.provenance.length} event(s)`))));
  }
  provenance.append(el("h3", { text: `L0 events (${chain.events.length})` }),
                    eventTable(chain.events));
  root.append(provenance, forgetOne(m));
}

function forgetOne(memory) {
  const out = el("div.forget-out");
  const start = el("button.danger#forget-one", { type: "button", text: "Forget…" });
  start.addEventListener("click", () => {
    clear(out).append(
      el("p", { text: `Forgetting this ${memory.layer === "L2" ? "insight" : "memory"} ` +
        "removes it from RocksDB, Tantivy and LanceDB on every replica, for good: a backfill " +
        "will not derive it again. What was derived only from it goes too; insights quoting " +
        "it are rewritten without it." }),
      el("blockquote", { text: memory.content }),
      el("button.danger#forget-one-confirm", { type: "button", text: "Yes, forget it",
        onclick: async () => {
          const report = await api(`/api/v1/memories/${encodeURIComponent(memory.id)}`,
                                   { method: "DELETE" });
          clear(out).append(forgetReport(report));
        } }),
      el("button", { type: "button", text: "Cancel", onclick: () => clear(out) }));
  });
  return el("section.forget", {}, el("h2", { text: "Forget" }),
            session.who.read_only ? el("p.muted", { text: "This key is read-only." }) : start,
            out);
}
