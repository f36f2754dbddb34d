// Cluster and pipeline: members, roles, term, commit / applied / indexed index and lag,
// refreshed live (cluster status needs the admin key); the latest pipeline runs from the
// Dagster UI's GraphQL when this browser can reach it, else links into the Dagster UI; and the
// audit summary when the node has one.
import { ApiError, api, append, clear, el, json, notice, number, session, when } from "./core.js";

const REFRESH_MS = 2000;
const ASSETS = ["l0_events", "l1_memories", "memory_graph", "l2_insights", "memory_decay"];
const RUNS_QUERY = `query MemoroseRuns { runsOrError(limit: 10) { __typename
  ... on Runs { results { runId status jobName startTime endTime tags { key value } } } } }`;

function needAdmin(root, message, retry) {
  const input = el("input#admin-key", { type: "password", placeholder: "admin key",
                                        autocomplete: "off" });
  const form = el("form.inline#admin-form", {}, input,
                  el("button", { type: "submit", text: "Use admin key" }));
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    session.adminKey = input.value.trim();
    retry();
  });
  clear(root).append(notice(message, "info"), form);
}

function statusTable(status) {
  const lag = (a, b) => (a === null || a === undefined || b === null || b === undefined ? "–"
    : number(a - b, 0));
  return el("div", {},
    el("dl.facts.wide#cluster-self", {}, [
      ["Node", status.node_id], ["Role", status.role], ["Term", status.term],
      ["Leader", status.leader || "none"], ["Quorum", status.has_quorum ? "yes" : "no"],
      ["Commit index", status.commit_index], ["Applied index", status.applied_index],
      ["Indexed index", status.indexed_index],
      ["Apply lag", lag(status.commit_index, status.applied_index)],
      ["Index lag", lag(status.applied_index, status.indexed_index)],
      ["Raft log entries", status.log_len],
    ].map(([k, v]) => [el("dt", { text: k }), el("dd", { text: String(v ?? "–") })])),
    el("table.list#cluster-members", {},
      el("thead", {}, el("tr", {}, ["Member", "Node", "Role", "Term", "Commit", "Applied",
                                    "Indexed", "Lag", "Seen"].map((h) => el("th", { text: h })))),
      el("tbody", {}, status.members.map((m) => el(`tr${m.reachable ? "" : ".down"}`, {},
        el("td.mono", { text: m.raft_address }), el("td", { text: m.node_id || "" }),
        el("td", { text: m.role || (m.reachable ? "" : "unreachable") }),
        el("td.num", { text: m.term ?? "" }), el("td.num", { text: m.commit_index ?? "" }),
        el("td.num", { text: m.store_applied_index ?? m.applied_index ?? "" }),
        el("td.num", { text: m.indexed_index ?? "" }), el("td.num", { text: m.lag ?? "–" }),
        el("td", { text: m.age_s === null || m.age_s === undefined ? "never" :
                           `${m.age_s}s ago` }))))));
}

async function runs(dagster, out, applied) {
  try {
    const response = await fetch(`${dagster}/graphql`, {
      method: "POST", headers: { "Content-Type": "application/json" }, credentials: "omit",
      body: JSON.stringify({ query: RUNS_QUERY }) });
    const data = await response.json();
    const results = data.data.runsOrError.results || [];
    const tag = (run, key) => (run.tags.find((t) => t.key === key) || {}).value;
    const done = results.filter((r) => r.status === "SUCCESS" && tag(r, "memorose/log_until"));
    const until = done.length ? Math.max(...done.map((r) => Number(tag(r, "memorose/log_until"))))
      : null;
    clear(out).append(
      until !== null && applied !== null ? el("p#consolidation-lag", {
        text: `Consolidation lag: ${applied - until} log entries after the last successful ` +
              `run (through log index ${until}).` }) : null,
      el("table.list#pipeline-runs", {},
        el("thead", {}, el("tr", {}, ["Run", "Job", "Status", "Log range", "Started", "Ended"]
          .map((h) => el("th", { text: h })))),
        el("tbody", {}, results.map((r) => el("tr", {},
          el("td", {}, el("a", { href: `${dagster}/runs/${r.runId}`, text: r.runId.slice(0, 8),
                                 target: "_blank", rel: "noopener" })),
          el("td", { text: r.jobName }), el("td", { text: r.status }),
          el("td", { text: tag(r, "memorose/log_after") ?
            `${tag(r, "memorose/log_after")}..${tag(r, "memorose/log_until")}` : "" }),
          el("td", { text: when(r.startTime) }), el("td", { text: when(r.endTime) }))))));
  } catch {
    clear(out).append(el("p.muted", { text: `The Dagster UI at ${dagster} did not answer this ` +
      "browser (not running, or it refuses cross-origin requests): use the links above." }));
  }
}

export async function clusterPage(root) {
  const who = session.who;
  const dagster = who.dagster_url;
  const statusBox = el("div#cluster-status");
  const pipelineRuns = el("div#pipeline-runs-box");
  const audit = el("section#audit", { hidden: true }, el("h2", { text: "Audit" }));
  const links = el("ul.links#dagster-links", {},
    el("li", {}, el("a", { href: `${dagster}/runs`, target: "_blank", rel: "noopener",
                           text: "Runs" })),
    el("li", {}, el("a", { href: `${dagster}/assets`, target: "_blank", rel: "noopener",
                           text: "Assets and lineage" })),
    ASSETS.map((a) => el("li", {}, el("a", { href: `${dagster}/assets/${a}`, target: "_blank",
                                             rel: "noopener", text: a }))),
    el("li", {}, el("a", { href: `${dagster}/automation`, target: "_blank", rel: "noopener",
                           text: "Sensors and schedules" })));
  append(root, el("h1", { text: "Cluster & pipeline" }), el("h2", { text: "Raft group" }),
         statusBox, el("h2", { text: "Pipeline" }),
         el("p.muted", { text: `Dagster UI: ${dagster}` }), links, pipelineRuns, audit);

  let stopped = false;
  let timer = 0;
  let applied = null;
  let ranOnce = false;
  const admin = !who.open && who.role !== "admin";

  async function refresh() {
    if (stopped) return;
    if (admin && !session.adminKey) {
      needAdmin(statusBox, "Cluster status needs the admin key (MEMOROSE_ADMIN_KEY). It is " +
                           "kept for this browser session only.", refresh);
      return;
    }
    try {
      const status = await api("/api/v1/cluster/status", { admin: true });
      applied = status.applied_index;
      clear(statusBox).append(statusTable(status),
                              el("p.muted", { text: `refreshed ${new Date().toLocaleTimeString()}` }));
      if (!ranOnce) { ranOnce = true; runs(dagster, pipelineRuns, applied); loadAudit(); }
    } catch (error) {
      if (error instanceof ApiError && (error.status === 401 || error.status === 403)) {
        if (admin) session.adminKey = "";
        needAdmin(statusBox, `Admin key needed: ${error.message}`, refresh);
        return;
      }
      clear(statusBox).append(notice(error.message));
    }
    timer = setTimeout(refresh, REFRESH_MS);
  }

  async function loadAudit() {
    try {
      const summary = await api("/api/v1/admin/audit", { admin: true });
      audit.hidden = false;
      append(audit, json(summary));
    } catch (error) {
      audit.hidden = true; // no audit on this node (404), or not for this key
      if (!(error instanceof ApiError)) throw error;
    }
  }

  await refresh();
  return () => { stopped = true; clearTimeout(timer); };
}
