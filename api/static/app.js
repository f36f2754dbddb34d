// The dashboard's shell: sign-in (a key kept in sessionStorage for this browser session), the
// open-mode banner, navigation, and the hash router that draws one page at a time.
import { ApiError, api, append, clear, el, notice, session } from "./core.js";
import { clusterPage } from "./cluster.js";
import { graphPage } from "./graph.js";
import { livePage } from "./live.js";
import { memoriesPage, memoryPage } from "./memories.js";
import { searchPage } from "./search.js";

const PAGES = {
  memories: { title: "Memories", draw: memoriesPage, data: true },
  memory: { title: "Memory", draw: memoryPage, data: true, hidden: true },
  graph: { title: "Graph", draw: graphPage, data: true },
  search: { title: "Search", draw: searchPage, data: true },
  live: { title: "Live", draw: livePage, data: true },
  cluster: { title: "Cluster & pipeline", draw: clusterPage, data: false },
};

const main = document.getElementById("main");
const nav = document.getElementById("nav");
const banner = document.getElementById("banner");
const who = document.getElementById("who");
let leave = null; // the current page's clean-up (timers, listeners)

function route() {
  const hash = location.hash.replace(/^#\/?/, "") || "memories";
  const [path, search = ""] = hash.split("?");
  const [name, ...rest] = path.split("/");
  return { name: PAGES[name] ? name : "memories", arg: rest.map(decodeURIComponent).join("/"),
           params: new URLSearchParams(search) };
}

async function draw() {
  if (leave) { leave(); leave = null; }
  const { name, arg, params } = route();
  const page = PAGES[name];
  for (const link of nav.querySelectorAll("a")) {
    link.classList.toggle("active", link.dataset.page === name);
  }
  clear(main);
  document.title = `${page.title} · Memorose`;
  if (page.data && session.who.role === "admin") {
    append(main, el("h1", { text: page.title }), notice(
      "The admin key reaches no tenant data: sign in with a tenant key to see memories.",
      "info"));
    return;
  }
  const root = el(`section.page#page-${name}`);
  main.append(root);
  try {
    leave = (await page.draw(root, { arg, params })) || null;
  } catch (error) {
    if (error instanceof ApiError && error.status === 401) return;
    append(root, notice(error.message));
  }
}

function signIn(message) {
  session.key = "";
  session.who = null;
  if (leave) { leave(); leave = null; }
  clear(nav);
  clear(banner);
  who.textContent = "";
  const input = el("input#key", { type: "password", name: "key", autocomplete: "off",
                                  placeholder: "API key", required: true });
  const form = el("form.signin", {},
    el("h1", { text: "Sign in" }),
    el("p", { text: "Enter a tenant key (or the admin key, for the cluster page). It is kept " +
                    "for this browser session only and sent with every request." }),
    input, el("button", { type: "submit", text: "Sign in" }),
    message ? notice(message) : null);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    try {
      session.who = await api("/dashboard/api/whoami", { key: input.value.trim() });
      session.key = input.value.trim();
      start();
    } catch (error) {
      signIn(error.status === 401 ? `Wrong key: ${error.message}` : error.message);
    }
  });
  clear(main).append(form);
  input.focus();
}

function start() {
  const me = session.who;
  clear(nav);
  for (const [name, page] of Object.entries(PAGES)) {
    if (!page.hidden) {
      nav.append(el("a", { href: `#/${name}`, "data-page": name, text: page.title }));
    }
  }
  clear(banner);
  if (me.open) {
    banner.append(el("p.banner.open", { role: "status",
      text: `Open mode: this node has no API keys, so anyone who reaches ${me.bind} ` +
            `(${me.loopback ? "loopback only" : "a network address!"}) sees everything, as ` +
            "tenant default. Set MEMOROSE_API_KEYS or make keys to close it." }));
  }
  who.textContent = me.open ? "open node" :
    me.role === "admin" ? "admin key" : `tenant ${me.tenant}${me.read_only ? " (read-only)" : ""}`;
  if (!me.open) {
    append(who, " ", el("button.link#signout", { type: "button", text: "Sign out",
                                                onclick: () => signIn("") }));
  }
  draw();
}

window.addEventListener("hashchange", () => { if (session.who) draw(); });
window.addEventListener("memorose:signed-out", (event) => signIn(event.detail));

(async function boot() {
  try {
    session.who = await api("/dashboard/api/whoami", { key: session.key || "" });
    start();
  } catch (error) {
    signIn(session.key && error.status === 401 ? `Wrong key: ${error.message}` : "");
  }
})();
