// Live: the tenant's events, memories and insights as they are committed, polled every few
// seconds from the log (no reload), newest first.
import { api, append, el, number, when } from "./core.js";

const POLL_MS = 3000;
const KEEP = 300;

export async function livePage(root) {
  const counts = { L0: 0, L1: 0, L2: 0 };
  const stats = el("p.muted.status#live-stats");
  const lag = el("p#live-lag");
  const list = el("ol.live#live-list");
  append(root, el("h1", { text: "Live" }),
         el("p.muted", { text: `New events, memories and insights appear here as they are ` +
                               `committed (checked every ${POLL_MS / 1000} s).` }),
         stats, lag, list);
  let cursor = -1;
  let newestEvent = null;
  let newestMemory = null;
  let stopped = false;
  let timer = 0;

  function row(item, fresh) {
    const what = item.layer === "L0" ? "event" : item.layer === "L1" ? "memory" : "insight";
    const link = item.layer === "L0" ? el("span", { text: item.content }) :
      el("a", { href: `#/memory/${encodeURIComponent(item.id)}`, text: item.content });
    return el(`li.${item.layer}${fresh ? ".fresh" : ""}`, { "data-id": item.id,
                                                            "data-log": item.log_index },
      el("span.badge", { text: what }), " ", link,
      el("span.muted", { text: ` ${[item.user_id, item.stream_id, `log ${item.log_index}`,
                                    when(item.timestamp || item.created_at)]
        .filter(Boolean).join(" · ")}` }));
  }

  async function poll() {
    const page = await api(`/dashboard/api/recent?after=${cursor}&limit=100`);
    const fresh = cursor >= 0;
    cursor = page.cursor;
    for (const item of page.items) {
      counts[item.layer]++;
      if (item.layer === "L0") newestEvent = item.log_index;
      else newestMemory = item.log_index;
      list.prepend(row(item, fresh));
    }
    while (list.children.length > KEEP) list.lastChild.remove();
    stats.textContent = `seen: ${counts.L0} events, ${counts.L1} memories, ${counts.L2} ` +
      `insights · log index ${page.cursor} of ${page.applied_index}`;
    const behind = [...list.querySelectorAll("li.L0")].filter((li) =>
      newestMemory === null || Number(li.dataset.log) > newestMemory);
    lag.textContent = newestEvent === null ? "" : newestMemory !== null &&
      newestMemory >= newestEvent ? "Consolidation: every event shown is behind a memory commit." :
      `Consolidation lag: ${number(behind.length, 0)} event(s) committed after the newest ` +
      "memory commit shown (the pipeline derives them next).";
  }

  async function loop() {
    if (stopped) return;
    try { await poll(); } catch (error) { stats.textContent = error.message; }
    if (!stopped) timer = setTimeout(loop, POLL_MS);
  }
  await loop();
  return () => { stopped = true; clearTimeout(timer); };
}
