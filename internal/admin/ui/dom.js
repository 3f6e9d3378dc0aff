// dom.js: building elements without innerHTML (every name, reason and body
// shown comes from servers and configs, so nothing is parsed as HTML), and
// formatting numbers and durations.

// h creates an element: h("td", {class: "num"}, "12", child, ...). Attributes
// starting with "on" become listeners; null and false children are skipped.
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs ?? {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "dataset") Object.assign(el.dataset, v);
    else el.setAttribute(k, v === true ? "" : String(v));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else el.append(c instanceof Node ? c : String(c));
  }
}

// svg creates an SVG element with attributes.
export function svg(tag, attrs = {}, ...children) {
  const el = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
  append(el, children);
  return el;
}

// skew is how far the browser's clock is ahead of the server's (set from
// each snapshot), so "since" is measured on the server's clock.
let skew = 0;
export function setServerTime(iso) {
  const t = Date.parse(iso);
  if (Number.isFinite(t)) skew = Date.now() - t;
}
export const serverNow = () => Date.now() - skew;

// ago renders the time since an ISO date, e.g. "3m 12s".
export function ago(iso, now = serverNow()) {
  const t = Date.parse(iso);
  if (!Number.isFinite(t)) return "—";
  return duration(Math.max(0, now - t));
}

export function duration(ms) {
  let s = Math.floor(ms / 1000);
  const d = Math.floor(s / 86400); s -= d * 86400;
  const hr = Math.floor(s / 3600); s -= hr * 3600;
  const m = Math.floor(s / 60); s -= m * 60;
  if (d) return `${d}d ${hr}h`;
  if (hr) return `${hr}h ${m}m`;
  if (m) return `${m}m ${s}s`;
  return `${s}s`;
}

export function num(v, digits = 1) {
  if (v === null || v === undefined || Number.isNaN(v)) return "—";
  return Number(v).toFixed(digits);
}

export function pct(v) {
  if (v === null || v === undefined) return "—";
  return (v * 100).toFixed(v > 0 && v < 0.01 ? 2 : 1) + "%";
}

export function badge(state) {
  return h("span", { class: `badge ${state}`, "data-state": state }, state);
}

// api calls the admin API (same origin; the login cookie or no auth) and
// returns the decoded JSON, throwing the API's error message on failure.
export async function api(method, path, body) {
  const init = { method, headers: { Accept: "application/json" }, credentials: "same-origin" };
  if (body !== undefined) {
    init.body = JSON.stringify(body);
    init.headers["Content-Type"] = "application/json";
  }
  const resp = await fetch(path, init);
  let data = null;
  try { data = await resp.json(); } catch { /* not JSON */ }
  if (!resp.ok) {
    const err = new Error(data?.error ? [data.error, ...(data.details ?? [])].join(": ") : `HTTP ${resp.status}`);
    err.status = resp.status;
    throw err;
  }
  return data;
}

export function toast(msg, isError = false) {
  const el = document.getElementById("toast");
  el.textContent = msg;
  el.className = isError ? "error" : "";
  el.hidden = false;
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => { el.hidden = true; }, 4000);
}

export const enc = (s) => encodeURIComponent(s);
