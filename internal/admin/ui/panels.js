// panels.js: the persistence table, the cluster and the state service.
import { h, api, enc, toast } from "./dom.js";
import { confirmDialog } from "./actions.js";

// persistencePanel: entries per server of a chosen pool, look up and delete
// a key.
export function persistencePanel(getSnap) {
  const select = h("select", { id: "persist-pool", "aria-label": "pool" });
  const counts = h("tbody");
  const key = h("input", { type: "text", id: "persist-key", placeholder: "key (cookie value, client address…)", size: 28 });
  const found = h("div", { id: "persist-found" });
  const el = h("section", { class: "card", id: "persistence" }, h("h2", {}, "Persistence"),
    h("div", { class: "inline-form" }, "pool ", select,
      h("button", { type: "button", onclick: () => refresh() }, "refresh")),
    h("table", {}, h("thead", {}, h("tr", {}, h("th", {}, "server"), h("th", { class: "num" }, "entries"))), counts),
    h("form", { class: "inline-form", onsubmit: (e) => { e.preventDefault(); lookup(); } }, key,
      h("button", { type: "submit", id: "persist-lookup" }, "look up"),
      h("button", { type: "button", id: "persist-delete", onclick: () => del() }, "delete")),
    found);
  let poolsSeen = "";

  async function refresh() {
    if (!select.value) return;
    try {
      const t = await api("GET", `/api/v1/pools/${enc(select.value)}/persistence`);
      counts.replaceChildren(...Object.entries(t.servers).map(([s, n]) =>
        h("tr", {}, h("td", {}, s), h("td", { class: "num" }, n))),
        h("tr", {}, h("th", {}, "total"), h("th", { class: "num" }, t.entries)));
    } catch (e) {
      counts.replaceChildren(h("tr", {}, h("td", { colspan: 2, class: "muted" }, e.message)));
    }
  }
  async function lookup() {
    const k = key.value.trim();
    if (!k || !select.value) return;
    try {
      const e = await api("GET", `/api/v1/pools/${enc(select.value)}/persistence?key=${enc(k)}`);
      found.replaceChildren(h("dl", { class: "kv" }, h("dt", {}, "server"), h("dd", {}, e.server),
        h("dt", {}, "last seen"), h("dd", {}, e.last_seen), h("dt", {}, "expires"), h("dd", {}, e.expires)));
    } catch (e) {
      found.replaceChildren(h("p", { class: "muted" }, e.message));
    }
  }
  async function del() {
    const k = key.value.trim();
    if (!k || !select.value) return;
    if (!(await confirmDialog(`Delete the persistence entry for this key in pool ${select.value}? The client is balanced afresh on its next request.`))) return;
    try {
      await api("DELETE", `/api/v1/pools/${enc(select.value)}/persistence?key=${enc(k)}`);
      toast("entry deleted");
      found.replaceChildren();
      refresh();
    } catch (e) {
      toast(e.message, true);
    }
  }
  select.addEventListener("change", () => { found.replaceChildren(); refresh(); });
  return {
    el,
    update(s) {
      const names = s.pools.filter((p) => p.persistence !== null).map((p) => p.name);
      el.hidden = names.length === 0;
      if (names.join("\n") !== poolsSeen) {
        poolsSeen = names.join("\n");
        const keep = select.value;
        select.replaceChildren(...names.map((n) => h("option", { value: n }, n)));
        if (names.includes(keep)) select.value = keep;
        refresh();
      }
    },
  };
}

// clusterPanel polls /api/v1/cluster when the snapshot says the cluster
// room serves it (clustered()), and shows "not clustered" otherwise.
export function clusterPanel(clustered) {
  const body = h("div", { id: "cluster-body" }, h("p", { class: "muted" }, "…"));
  const el = h("section", { class: "card", id: "cluster" }, h("h2", {}, "Cluster"), body);
  async function poll() {
    if (!clustered()) {
      body.replaceChildren(h("p", { class: "muted", id: "not-clustered" }, "not clustered"));
      return;
    }
    try {
      body.replaceChildren(render(await api("GET", "/api/v1/cluster")));
    } catch (e) {
      body.replaceChildren(h("p", { class: "muted", id: "not-clustered" }, e.status === 404 ? "not clustered" : e.message));
    }
  }
  poll();
  const timer = setInterval(poll, 5000);
  return { el, stop: () => clearInterval(timer) };
}

// render shows a JSON value: scalars as key/value pairs, arrays of objects
// (peers) as tables, so the panel follows whatever the cluster room reports.
function render(v) {
  if (Array.isArray(v)) {
    if (v.length === 0) return h("p", { class: "muted" }, "none");
    if (typeof v[0] !== "object" || v[0] === null) return h("span", {}, v.join(", "));
    const cols = [...new Set(v.flatMap((o) => Object.keys(o)))];
    return h("table", {}, h("thead", {}, h("tr", {}, cols.map((c) => h("th", {}, c.replaceAll("_", " "))))),
      h("tbody", {}, v.map((o) => h("tr", {}, cols.map((c) => h("td", {}, scalar(o[c])))))));
  }
  if (v && typeof v === "object") {
    const dl = h("dl", { class: "kv" });
    for (const [k, x] of Object.entries(v)) {
      dl.append(h("dt", {}, k.replaceAll("_", " ")), h("dd", {}, typeof x === "object" && x !== null ? render(x) : scalar(x)));
    }
    return dl;
  }
  return h("span", {}, scalar(v));
}

function scalar(x) {
  if (x === null || x === undefined) return "—";
  if (typeof x === "object") return JSON.stringify(x);
  return String(x);
}

// statePanel shows the state service's counters; hidden without one.
export function statePanel() {
  const dl = h("dl", { class: "kv" });
  const el = h("section", { class: "card", id: "state-service", hidden: true }, h("h2", {}, "State service"), dl);
  const labels = { sessions: "sessions", locks_held: "locks held", lock_waiters: "waiting for a lock",
    lock_waits: "lock waits", lock_timeouts: "lock timeouts", locks_broken: "locks broken", expiries: "expiries" };
  return {
    el,
    update(st) {
      el.hidden = !st;
      if (!st) return;
      dl.replaceChildren(...Object.entries(labels).flatMap(([k, label]) => [h("dt", {}, label), h("dd", { "data-stat": k }, st[k])]));
    },
  };
}
