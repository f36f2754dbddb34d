// Shared by every page: the session's keys, fetch with the key, and small DOM helpers.
// Data is only ever put in the page as text (textContent), never as HTML.

const KEY = "memorose.key";
const ADMIN_KEY = "memorose.adminKey";

export const session = {
  get key() { return sessionStorage.getItem(KEY) || ""; },
  set key(value) { value ? sessionStorage.setItem(KEY, value) : sessionStorage.removeItem(KEY); },
  get adminKey() { return sessionStorage.getItem(ADMIN_KEY) || ""; },
  set adminKey(value) {
    value ? sessionStorage.setItem(ADMIN_KEY, value) : sessionStorage.removeItem(ADMIN_KEY);
  },
  who: null, // what /dashboard/api/whoami said about the key
};

export class ApiError extends Error {
  constructor(status, body) {
    const error = (body && body.error) || {};
    super(error.message || `HTTP ${status}`);
    this.status = status;
    this.code = error.code || "http_error";
  }
}

// fetch JSON from this node with the session's key (or the admin key, for admin routes)
export async function api(path, { method = "GET", body, admin = false, key } = {}) {
  const headers = { Accept: "application/json" };
  const secret = key !== undefined ? key : (admin && session.adminKey) || session.key;
  if (secret) headers.Authorization = `Bearer ${secret}`;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const response = await fetch(path, {
    method, headers, body: body === undefined ? undefined : JSON.stringify(body),
    credentials: "omit", cache: "no-store",
  });
  const text = await response.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch { data = null; }
  if (!response.ok) {
    const error = new ApiError(response.status, data);
    if (response.status === 401 && !admin && key === undefined) {
      window.dispatchEvent(new CustomEvent("memorose:signed-out", { detail: error.message }));
    }
    throw error;
  }
  return data;
}

export function query(params) {
  const search = new URLSearchParams();
  for (const [name, value] of Object.entries(params)) {
    if (value !== undefined && value !== null && value !== "") search.set(name, String(value));
  }
  const text = search.toString();
  return text ? `?${text}` : "";
}

// el("tag.class#id", {attr: value, onclick: fn}, child, "text", ...)
export function el(spec, attrs = {}, ...children) {
  const [, tag = "div", rest = ""] = spec.match(/^([a-z0-9]+)?(.*)$/i);
  const node = document.createElement(tag);
  for (const part of rest.match(/[.#][^.#]+/g) || []) {
    if (part[0] === ".") node.classList.add(part.slice(1));
    else node.id = part.slice(1);
  }
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else if (name === "text") node.textContent = value;
    else if (name === "value") node.value = value;
    else if (name === "checked") node.checked = Boolean(value);
    else node.setAttribute(name, value === true ? "" : String(value));
  }
  append(node, ...children);
  return node;
}

export function append(node, ...children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

export function clear(node) {
  while (node.firstChild) node.removeChild(node.firstChild);
  return node;
}

export function when(seconds) {
  if (seconds === null || seconds === undefined || seconds === "") return "";
  const date = new Date(Number(seconds) * 1000);
  if (Number.isNaN(date.getTime())) return "";
  return date.toISOString().replace("T", " ").replace(/\.\d+Z$/, " UTC");
}

export function number(value, digits = 3) {
  if (value === null || value === undefined) return "–";
  return Number(value).toFixed(digits).replace(/\.?0+$/, "") || "0";
}

export function notice(text, kind = "error") {
  return el(`p.notice.${kind}`, { role: kind === "error" ? "alert" : "status", text });
}

export function field(label, control) {
  return el("label.field", {}, el("span", { text: label }), control);
}

export function select(name, options, value) {
  return el(`select`, { name },
    options.map(([v, label]) => el("option", { value: v, selected: v === value }, label)));
}

// A page's user choice: the tenant's users, remembered across pages for this session
export async function userPicker(selected) {
  const { users } = await api("/dashboard/api/users");
  const current = selected || sessionStorage.getItem("memorose.user") || users[0] || "";
  const picker = select("user_id", users.map((u) => [u, u]), current);
  picker.addEventListener("change", () => sessionStorage.setItem("memorose.user", picker.value));
  if (current) sessionStorage.setItem("memorose.user", current);
  return { picker, users };
}

export function json(value) {
  return el("pre.json", { text: JSON.stringify(value, null, 2) });
}
