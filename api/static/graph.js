// Graph: a user's entities and their co-occurrence edges on a canvas. A force layout written
// here (springs on edges, repulsion between nearby nodes found through a grid, a pull to the
// centre) runs a capped number of steps, a few per frame, so a few thousand nodes stay smooth.
// Wheel zooms, drag pans, a click on an entity shows it and can expand its neighbours, a click
// on an edge shows the memories behind it.
import { api, append, clear, el, field, notice, query, userPicker } from "./core.js";

const MAX_TICKS = 300;
const FRAME_BUDGET_MS = 30; // layout steps per frame; the frame draws once
const LINK = 60; // spring rest length
const REPULSE = 60; // repulsion reaches this far (also the grid's cell size)
const GRAVITY = 0.0005; // pull to the centre
const COLORS = { person: "#c2185b", place: "#2e7d32", organisation: "#1565c0",
                 thing: "#6d4c41" };

class Layout {
  constructor() {
    this.nodes = []; // {id, name, type, memory_ids, x, y, vx, vy, r}
    this.byId = new Map();
    this.edges = []; // {id, source, target, weight, a, b}
    this.edgeIds = new Set();
    this.ticks = 0;
    this.alpha = 1;
  }

  add(entities, relations, near) {
    let added = 0;
    for (const e of entities) {
      if (this.byId.has(e.id)) continue;
      const i = this.nodes.length;
      const angle = i * 2.39996; // golden angle spiral: a stable, even start
      const spread = near ? 30 + Math.random() * 30 : 0.7 * LINK * Math.sqrt(i + 1);
      const node = { id: e.id, name: e.name, type: e.entity_type, aliases: e.aliases || [],
                     memory_ids: e.memory_ids || [],
                     x: (near ? near.x : 0) + spread * Math.cos(angle),
                     y: (near ? near.y : 0) + spread * Math.sin(angle), vx: 0, vy: 0,
                     r: 3 + Math.min(12, Math.sqrt((e.memory_ids || []).length) * 2) };
      this.nodes.push(node);
      this.byId.set(e.id, node);
      added++;
    }
    for (const r of relations) {
      if (r.relation === "mentioned_in" || this.edgeIds.has(r.id)) continue;
      const a = this.byId.get(r.source);
      const b = this.byId.get(r.target);
      if (!a || !b) continue;
      this.edges.push({ ...r, a, b });
      this.edgeIds.add(r.id);
    }
    if (added) { this.ticks = 0; this.alpha = Math.max(this.alpha, near ? 0.5 : 1); }
    return added;
  }

  running() { return this.ticks < MAX_TICKS && this.alpha > 0.005; }

  tick() {
    const nodes = this.nodes;
    const grid = new Map();
    for (const n of nodes) {
      const key = Math.floor(n.x / REPULSE) * 65536 + Math.floor(n.y / REPULSE);
      (grid.get(key) || grid.set(key, []).get(key)).push(n);
    }
    const strength = 40 * this.alpha;
    for (const n of nodes) {
      const cx = Math.floor(n.x / REPULSE);
      const cy = Math.floor(n.y / REPULSE);
      for (let dx = -1; dx <= 1; dx++) {
        for (let dy = -1; dy <= 1; dy++) {
          for (const m of grid.get((cx + dx) * 65536 + cy + dy) || []) {
            if (m === n) continue;
            let x = n.x - m.x;
            let y = n.y - m.y;
            let d2 = x * x + y * y;
            if (d2 > REPULSE * REPULSE) continue;
            if (d2 < 0.01) { x = Math.random() - 0.5; y = Math.random() - 0.5; d2 = 0.5; }
            const f = strength / d2;
            n.vx += x * f;
            n.vy += y * f;
          }
        }
      }
    }
    for (const e of this.edges) {
      const x = e.b.x - e.a.x;
      const y = e.b.y - e.a.y;
      const d = Math.sqrt(x * x + y * y) || 1;
      const f = ((d - LINK) / d) * 0.02 * this.alpha * Math.min(3, e.weight || 1);
      e.a.vx += x * f; e.a.vy += y * f;
      e.b.vx -= x * f; e.b.vy -= y * f;
    }
    for (const n of nodes) {
      n.vx -= n.x * GRAVITY * this.alpha;
      n.vy -= n.y * GRAVITY * this.alpha;
      n.vx *= 0.6; n.vy *= 0.6;
      n.x += Math.max(-20, Math.min(20, n.vx));
      n.y += Math.max(-20, Math.min(20, n.vy));
    }
    this.ticks++;
    this.alpha *= 0.985;
  }
}

class View {
  constructor(canvas, layout, onPick) {
    this.canvas = canvas;
    this.layout = layout;
    this.onPick = onPick;
    this.scale = 1; this.ox = 0; this.oy = 0;
    this.selected = null; this.edge = null; this.userMoved = false;
    this.frame = 0;
    this.listen();
  }

  toWorld(px, py) { return [(px - this.ox) / this.scale, (py - this.oy) / this.scale]; }

  fit() {
    const { nodes } = this.layout;
    const width = this.canvas.clientWidth;
    const height = this.canvas.clientHeight;
    if (!nodes.length) { this.ox = width / 2; this.oy = height / 2; return; }
    const xs = nodes.map((n) => n.x);
    const ys = nodes.map((n) => n.y);
    const [x0, x1, y0, y1] = [Math.min(...xs), Math.max(...xs), Math.min(...ys), Math.max(...ys)];
    this.scale = Math.min(2.5, 0.9 * Math.min(width / (x1 - x0 + 80), height / (y1 - y0 + 80)));
    this.ox = width / 2 - this.scale * (x0 + x1) / 2;
    this.oy = height / 2 - this.scale * (y0 + y1) / 2;
  }

  listen() {
    const c = this.canvas;
    let drag = null;
    c.addEventListener("wheel", (event) => {
      event.preventDefault();
      const factor = Math.exp(-event.deltaY * 0.0015);
      const next = Math.max(0.05, Math.min(20, this.scale * factor));
      const rect = c.getBoundingClientRect();
      const px = event.clientX - rect.left;
      const py = event.clientY - rect.top;
      this.ox = px - (px - this.ox) * (next / this.scale);
      this.oy = py - (py - this.oy) * (next / this.scale);
      this.scale = next;
      this.userMoved = true;
      this.draw();
    }, { passive: false });
    c.addEventListener("pointerdown", (event) => {
      drag = { x: event.clientX, y: event.clientY, ox: this.ox, oy: this.oy, moved: false };
      c.setPointerCapture(event.pointerId);
    });
    c.addEventListener("pointermove", (event) => {
      if (!drag) return;
      const dx = event.clientX - drag.x;
      const dy = event.clientY - drag.y;
      if (Math.abs(dx) + Math.abs(dy) > 3) { drag.moved = true; this.userMoved = true; }
      this.ox = drag.ox + dx; this.oy = drag.oy + dy;
      this.draw();
    });
    c.addEventListener("pointerup", (event) => {
      const click = drag && !drag.moved;
      drag = null;
      if (!click) return;
      const rect = c.getBoundingClientRect();
      this.pick(event.clientX - rect.left, event.clientY - rect.top);
    });
  }

  // what lies under a canvas point: the nearest node within reach, else an edge
  hit(px, py) {
    const [x, y] = this.toWorld(px, py);
    let best = null;
    let bestD = Infinity;
    for (const n of this.layout.nodes) {
      const d = Math.hypot(n.x - x, n.y - y);
      if (d < Math.max(n.r + 3, 8 / this.scale) && d < bestD) { best = n; bestD = d; }
    }
    if (best) return { node: best };
    const reach = 5 / this.scale;
    for (const e of this.layout.edges) {
      const vx = e.b.x - e.a.x;
      const vy = e.b.y - e.a.y;
      const t = Math.max(0, Math.min(1, ((x - e.a.x) * vx + (y - e.a.y) * vy) /
                                          (vx * vx + vy * vy || 1)));
      if (Math.hypot(e.a.x + t * vx - x, e.a.y + t * vy - y) < reach) return { edge: e };
    }
    return {};
  }

  pick(px, py) {
    const { node, edge } = this.hit(px, py);
    this.selected = node || null;
    this.edge = edge || null;
    this.draw();
    this.onPick({ node, edge });
  }

  screen(node) { return [node.x * this.scale + this.ox, node.y * this.scale + this.oy]; }

  draw() {
    const c = this.canvas;
    const ratio = window.devicePixelRatio || 1;
    const width = c.clientWidth;
    const height = c.clientHeight;
    if (c.width !== Math.round(width * ratio) || c.height !== Math.round(height * ratio)) {
      c.width = Math.round(width * ratio); c.height = Math.round(height * ratio);
    }
    const g = c.getContext("2d");
    g.setTransform(ratio, 0, 0, ratio, 0, 0);
    g.clearRect(0, 0, width, height);
    g.setTransform(ratio * this.scale, 0, 0, ratio * this.scale, ratio * this.ox,
                   ratio * this.oy);
    g.lineWidth = 1 / this.scale;
    g.strokeStyle = "rgba(90, 90, 110, 0.35)";
    g.beginPath();
    for (const e of this.layout.edges) { g.moveTo(e.a.x, e.a.y); g.lineTo(e.b.x, e.b.y); }
    g.stroke();
    const focus = this.selected;
    if (this.edge || focus) {
      g.lineWidth = 2.5 / this.scale;
      g.strokeStyle = "#ff8f00";
      g.beginPath();
      for (const e of this.layout.edges) {
        if (e === this.edge || (focus && (e.a === focus || e.b === focus))) {
          g.moveTo(e.a.x, e.a.y); g.lineTo(e.b.x, e.b.y);
        }
      }
      g.stroke();
    }
    for (const [type, color] of Object.entries(COLORS)) { // one path per colour: fast
      g.fillStyle = color;
      g.beginPath();
      for (const n of this.layout.nodes) {
        if ((COLORS[n.type] ? n.type : "thing") !== type) continue;
        g.moveTo(n.x + n.r, n.y);
        g.arc(n.x, n.y, n.r, 0, 2 * Math.PI);
      }
      g.fill();
    }
    if (focus) {
      g.lineWidth = 3 / this.scale; g.strokeStyle = "#ff8f00";
      g.beginPath(); g.arc(focus.x, focus.y, focus.r, 0, 2 * Math.PI); g.stroke();
    }
    g.setTransform(ratio, 0, 0, ratio, 0, 0);
    g.font = "12px system-ui, sans-serif";
    g.fillStyle = "#1d1d27";
    const labelAll = this.layout.nodes.length * this.scale < 400;
    for (const n of this.layout.nodes) {
      if (!labelAll && n !== focus && n.r * this.scale < 10) continue;
      const [sx, sy] = this.screen(n);
      if (sx < -50 || sy < -20 || sx > width + 50 || sy > height + 20) continue;
      g.fillText(n.name, sx + n.r * this.scale + 3, sy + 4);
    }
  }

  animate(onSettled) {
    cancelAnimationFrame(this.frame);
    const step = () => {
      const started = performance.now();
      while (this.layout.running() && performance.now() - started < FRAME_BUDGET_MS) {
        this.layout.tick();
      }
      if (!this.userMoved) this.fit(); // follow the layout until the user zooms or pans
      this.draw();
      if (this.layout.running()) this.frame = requestAnimationFrame(step);
      else { if (!this.userMoved) this.fit(); this.draw(); if (onSettled) onSettled(); }
    };
    this.frame = requestAnimationFrame(step);
  }

  stop() { cancelAnimationFrame(this.frame); }

  reset(layout) {
    this.stop();
    this.layout = layout;
    this.selected = null; this.edge = null; this.userMoved = false;
  }
}

async function memoriesList(ids) {
  const shown = ids.slice(0, 12);
  const found = await Promise.all(shown.map((id) =>
    api(`/api/v1/memories/${encodeURIComponent(id)}`).catch(() => null)));
  return el("ul.edge-memories", {}, found.filter(Boolean).map((m) => el("li", {},
    el("a", { href: `#/memory/${encodeURIComponent(m.id)}`, text: m.content.slice(0, 160) }))),
    ids.length > shown.length ? el("li.muted", { text: `and ${ids.length - shown.length} more` })
      : null);
}

export async function graphPage(root, { params }) {
  const { picker, users } = await userPicker(params.get("user"));
  append(root, el("h1", { text: "Graph" }));
  if (!users.length) { root.append(notice("No users yet.", "info")); return null; }
  const entity = el("input#graph-entity", { name: "entity", placeholder: "all entities",
                                            value: params.get("entity") || "" });
  const hops = el("input", { name: "hops", type: "number", min: 0, max: 3, value: 1 });
  const form = el("form.filters#graph-form", {}, field("User", picker),
                  field("Around entity", entity), field("Hops", hops),
                  el("button", { type: "submit", text: "Show" }));
  const canvas = el("canvas#graph-canvas", { "aria-label": "Knowledge graph" });
  const side = el("aside.side#graph-side", {},
    el("p.muted", { text: "Click an entity or an edge. Wheel: zoom. Drag: pan." }));
  const status = el("p.muted.status#graph-status");
  root.append(form, status, el("div.graph", {}, canvas, side));

  let layout = new Layout();
  let view = null;

  async function fetchGraph(around, depth) {
    return api(`/api/v1/users/${encodeURIComponent(picker.value)}/graph` +
               query(around ? { entity: around, hops: depth, mentions: "false" }
                            : { mentions: "false" }));
  }

  function describe() {
    status.textContent = `${layout.nodes.length} entities, ${layout.edges.length} edges`;
    status.dataset.settled = layout.running() ? "no" : "yes";
  }

  async function pick({ node, edge }) {
    clear(side);
    if (node) {
      const expand = el("button#graph-expand", { type: "button", text: "Expand neighbours" });
      expand.addEventListener("click", async () => {
        const graph = await fetchGraph(node.name, 1);
        const added = layout.add(graph.entities, graph.relations, node);
        expand.textContent = added ? `Added ${added}` : "No new neighbours";
        describe();
        view.animate(describe);
      });
      append(side, el("h2#graph-selected", { text: node.name }),
        el("p", { text: `${node.type}${node.aliases.length ? ` · also ${node.aliases.join(", ")}`
                                                             : ""}` }),
        expand, el("h3", { text: `In ${node.memory_ids.length} memories` }),
        await memoriesList(node.memory_ids));
    } else if (edge) {
      const shared = edge.a.memory_ids.filter((id) => edge.b.memory_ids.includes(id));
      append(side, el("h2#graph-edge", { text: `${edge.a.name} — ${edge.b.name}` }),
        el("p", { text: `${edge.relation}, weight ${edge.weight}, ` +
                        `${(edge.source_event_ids || []).length} source events` }),
        el("h3", { text: `The memories behind it (${shared.length})` }),
        await memoriesList(shared));
    } else {
      side.append(el("p.muted", { text: "Nothing there." }));
    }
  }

  async function load() {
    layout = new Layout();
    if (view) view.reset(layout);
    else view = new View(canvas, layout, pick); // one view: the canvas keeps one set of listeners
    status.textContent = "Loading…";
    const graph = await fetchGraph(entity.value.trim(), Number(hops.value) || 0);
    layout.add(graph.entities, graph.relations, null);
    describe();
    view.fit();
    view.animate(describe);
  }
  form.addEventListener("submit", (event) => { event.preventDefault(); load(); });
  await load();
  const onResize = () => view && view.draw();
  window.addEventListener("resize", onResize);
  return () => { if (view) view.stop(); window.removeEventListener("resize", onResize); };
}
