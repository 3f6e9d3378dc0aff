// app.js: the dashboard. One Server-Sent Events stream (/api/v1/events)
// brings a snapshot of every listener, pool and server each second and at
// once on a state change; views update their cells in place, so buttons
// and inputs survive the updates.
import { h, ago, num, pct, badge, api, enc, setServerTime } from "./dom.js";
import { actionButtons } from "./actions.js";
import { serverPage } from "./server.js";
import { persistencePanel, clusterPanel, statePanel } from "./panels.js";

const view = document.getElementById("view");
let snap = null;          // the newest snapshot
let current = null;       // the view shown: {key, update(snap), stop()}

// ---- the stream ----------------------------------------------------------

function connect() {
  const conn = document.getElementById("conn");
  const es = new EventSource("/api/v1/events");
  es.addEventListener("snapshot", (ev) => {
    snap = JSON.parse(ev.data);
    setServerTime(snap.at);
    conn.dataset.state = "live";
    conn.textContent = "live";
    document.getElementById("version").textContent = snap.version ?? "";
    if (!current) route();
    else current.update(snap);
  });
  es.onerror = async () => {
    conn.dataset.state = "lost";
    conn.textContent = "reconnecting…";
    try {
      await api("GET", "/api/v1/session");
    } catch (e) {
      if (e.status === 401) location.assign("/login");
    }
  };
}

// ---- routing -------------------------------------------------------------

function route() {
  if (!snap) return;
  const m = location.hash.match(/^#\/server\/([^/]+)\/([^/]+)$/);
  const key = m ? `server:${m[1]}/${m[2]}` : "overview";
  if (current?.key === key) return;
  current?.stop?.();
  view.replaceChildren();
  current = m ? serverPage(view, decodeURIComponent(m[1]), decodeURIComponent(m[2]), () => snap)
              : overview(view);
  current.key = key;
  current.update(snap);
}
window.addEventListener("hashchange", route);

// ---- overview ------------------------------------------------------------

function overview(root) {
  const listeners = h("tbody");
  const pools = h("div", { id: "pools" });
  const persistence = persistencePanel(() => snap);
  const cluster = clusterPanel(() => snap?.cluster);
  const state = statePanel();
  root.append(
    h("section", { class: "card", id: "listeners" }, h("h2", {}, "Listeners and routes"),
      h("table", {}, h("thead", {}, h("tr", {}, h("th", {}, "listener"), h("th", {}, "address"), h("th", {}, "protocol"),
        h("th", {}, "routes"))), listeners)),
    pools,
    h("div", { class: "grid2" }, persistence.el, h("div", {}, cluster.el, state.el)),
  );
  const poolViews = new Map();
  let topo = "";
  return {
    update(s) {
      const t = JSON.stringify(s.listeners);
      if (t !== topo) {
        topo = t;
        listeners.replaceChildren(...s.listeners.map((l) => h("tr", { "data-listener": l.name },
          h("td", {}, l.name), h("td", {}, h("code", {}, l.address)), h("td", {}, l.protocol),
          h("td", {}, l.routes.map((r, i) => [i ? h("br") : null, h("code", {}, r.rule), " → ",
            h("a", { href: `#pool-${r.pool}` }, r.pool)])))));
      }
      const names = s.pools.map((p) => p.name).join("\n");
      if (names !== pools.dataset.names) {
        pools.dataset.names = names;
        poolViews.clear();
        pools.replaceChildren(...s.pools.map((p) => {
          const pv = poolView(p);
          poolViews.set(p.name, pv);
          return pv.el;
        }));
      }
      for (const p of s.pools) poolViews.get(p.name)?.update(p);
      persistence.update(s);
      state.update(s.state);
    },
    stop() { cluster.stop(); },
  };
}

const columns = ["state", "since", "server", "address", "weight", "active", "req/s", "errors", "p50 ms", "p99 ms", "last check", ""];
const numeric = new Set(["weight", "active", "req/s", "errors", "p50 ms", "p99 ms"]);

function poolView(p) {
  const body = h("tbody");
  const head = h("span", { class: "muted" });
  const el = h("section", { class: "card pool", id: `pool-${p.name}`, "data-pool": p.name },
    h("div", { class: "pool-head" }, h("h2", {}, "pool ", p.name), head),
    h("table", {}, h("thead", {}, h("tr", {}, columns.map((c) => h("th", { class: numeric.has(c) ? "num" : null }, c)))), body));
  const rows = new Map();
  return {
    el,
    update(p) {
      head.textContent = `${p.balance}` + (p.persistence === null ? "" : ` · ${p.persistence} persistence entries`);
      const names = p.servers.map((s) => s.name).join("\n");
      if (names !== body.dataset.names) {
        body.dataset.names = names;
        rows.clear();
        body.replaceChildren(...p.servers.map((sv) => {
          const r = serverRow(p.name, sv);
          rows.set(sv.name, r);
          return r.el;
        }));
      }
      for (const sv of p.servers) rows.get(sv.name)?.update(sv);
    },
  };
}

function serverRow(poolName, sv0) {
  let sv = sv0;
  const cells = {};
  for (const c of columns) cells[c] = h("td", { class: numeric.has(c) ? "num" : c === "last check" ? "reason" : null });
  cells.server.append(h("a", { href: `#/server/${enc(poolName)}/${enc(sv.name)}` }, sv.name));
  cells.address.append(h("code", {}, sv.address));
  cells[""].className = "actions";
  cells[""].append(...actionButtons(poolName, sv.name, () => sv.weight));
  const el = h("tr", { "data-pool": poolName, "data-server": sv.name }, Object.values(cells));
  return {
    el,
    update(next) {
      sv = next;
      el.dataset.state = sv.state;
      const b = cells.state.firstChild;
      if (!b || b.dataset.state !== sv.state) cells.state.replaceChildren(badge(sv.state));
      cells.since.textContent = ago(sv.since);
      cells.since.title = sv.since;
      cells.weight.textContent = sv.weight;
      cells.active.textContent = sv.active;
      cells["req/s"].textContent = num(sv.rps);
      cells.errors.textContent = pct(sv.error_rate);
      cells["p50 ms"].textContent = num(sv.p50_ms);
      cells["p99 ms"].textContent = num(sv.p99_ms);
      cells["last check"].textContent = sv.check ? `${sv.check.ok ? "pass" : "FAIL"} ${ago(sv.check.at)} ago${sv.check.reason ? ": " + sv.check.reason : ""}` : "no keepalive";
    },
  };
}

// ---- start ---------------------------------------------------------------

(async () => {
  try {
    const s = await api("GET", "/api/v1/session");
    document.getElementById("logout").hidden = !s.auth;
  } catch (e) {
    if (e.status === 401) return location.assign("/login");
  }
  connect();
})();
setInterval(() => { if (snap && current) current.update(snap); }, 1000); // keep "since" ticking
