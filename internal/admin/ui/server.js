// server.js: one server's page: live numbers, actions, the state timeline
// of the last hour, the learned reference hash with a diff of the last body
// that failed it, the keepalive transcript and its persistence entries.
import { h, ago, num, pct, badge, api, enc } from "./dom.js";
import { actionButtons } from "./actions.js";
import { drawTimeline } from "./timeline.js";
import { lineDiff } from "./diff.js";

export function serverPage(root, poolName, name, getSnap) {
  const title = h("h1", {}, h("a", { href: "#/" }, "overview"), " / pool ", poolName, " / server ", name);
  const live = h("dl", { class: "kv", id: "server-live" });
  const state = h("span", { id: "server-state" });
  const timeline = h("div", { id: "timeline" });
  const hash = h("div", { id: "hash" });
  const transcript = h("div", { class: "transcript", id: "transcript" });
  let weight = 1;
  const actions = h("div", { class: "actions", id: "server-actions" },
    ...actionButtons(poolName, name, () => weight, () => load()));
  root.append(title,
    h("section", { class: "card" }, h("div", { class: "pool-head" }, state, actions), live),
    h("section", { class: "card" }, h("h2", {}, "State over the last hour"), timeline, legend()),
    h("section", { class: "card" }, h("h2", {}, "Reference hash"), hash),
    h("section", { class: "card" }, h("h2", {}, "Keepalive transcript (newest first)"), transcript));

  async function load() {
    try {
      const d = await api("GET", `/api/v1/pools/${enc(poolName)}/servers/${enc(name)}/detail`);
      timeline.replaceChildren(drawTimeline(d.timeline));
      if (!d.timeline.complete) {
        timeline.append(h("p", { class: "muted" }, "The keepalive keeps its last 100 transitions; older ones are not shown."));
      }
      hash.replaceChildren(...hashView(d));
      transcript.replaceChildren(...transcriptView(d.checks));
      persistence = d.persistence;
    } catch (e) {
      transcript.replaceChildren(h("p", { class: "error" }, e.message));
    }
  }
  let persistence = null;
  load();
  const timer = setInterval(load, 2000);

  return {
    update(s) {
      const p = s.pools.find((x) => x.name === poolName);
      const sv = p?.servers.find((x) => x.name === name);
      if (!sv) {
        live.replaceChildren(h("p", { class: "error" }, "This server is not in the running config."));
        return;
      }
      weight = sv.weight;
      if (state.firstChild?.dataset.state !== sv.state) state.replaceChildren(badge(sv.state));
      const rows = [
        ["address", sv.address], ["state since", `${ago(sv.since)} (${sv.since})`], ["weight", sv.weight],
        ["active", sv.active], ["requests/s", num(sv.rps)], ["error rate", pct(sv.error_rate)],
        ["p50 / p99", `${num(sv.p50_ms)} / ${num(sv.p99_ms)} ms`], ["requests", sv.requests], ["failures", sv.failures],
        ["persistence entries", persistence === null ? "no table" : persistence],
      ];
      live.replaceChildren(...rows.flatMap(([k, v]) => [h("dt", {}, k), h("dd", { "data-field": k }, v)]));
    },
    stop() { clearInterval(timer); },
  };
}

function legend() {
  return h("div", { class: "legend" }, ["up", "dying", "down", "draining", "disabled"].map((s) =>
    h("span", {}, h("i", { class: s }), s)));
}

function hashView(d) {
  const ref = d.checks?.reference_hash;
  const out = [h("p", {}, ref ? h("code", { id: "reference-hash" }, "sha256:" + ref)
    : h("span", { class: "muted" }, "No reference hash: the keepalive does not hash bodies, or has not learned one yet."))];
  if (!d.failed) {
    if (ref) out.push(h("p", { class: "muted" }, "No reply has failed the reference hash since the admin started watching."));
    return out;
  }
  out.push(h("p", {}, "Last reply that failed it: ", h("span", { class: "rule" }, d.failed.reason), " ",
    h("span", { class: "muted" }, `(${ago(d.failed.at)} ago, sha256:${d.failed.hash.slice(0, 12)}…)`)));
  if (!d.reference) {
    out.push(h("p", { class: "muted" }, "The keepalive keeps the reference hash, not its body, and the admin has not seen a reply with it yet; the failing reply:"),
      h("pre", {}, d.failed.body));
    return out;
  }
  out.push(h("p", { class: "muted" }, `Diff from the last reference reply (${ago(d.reference.at)} ago) to the failing one:`));
  out.push(h("pre", { class: "diff", id: "body-diff" }, lineDiff(d.reference.body, d.failed.body).map((l) =>
    h("span", { class: l.op }, (l.op === "add" ? "+ " : l.op === "del" ? "- " : "  ") + l.text))));
  return out;
}

function transcriptView(rec) {
  if (!rec) return [h("p", { class: "muted" }, "This pool has no keepalive.")];
  const checks = [...(rec.checks ?? [])].reverse();
  if (checks.length === 0) return [h("p", { class: "muted" }, "No check has completed yet.")];
  return checks.map((c, i) => h("details", { open: i === 0 || undefined, "data-ok": String(c.ok) },
    h("summary", {}, h("span", { class: `verdict ${c.ok ? "pass" : "fail"}` }, c.ok ? "PASS" : "FAIL"), " ",
      new Date(c.at).toLocaleTimeString(), ` · ${num(c.duration_ms)} ms`, c.status ? ` · HTTP ${c.status}` : "",
      c.connection ? [" · ", h("span", { class: "connection", "data-field": "connection" }, c.connection)] : null, " · ",
      h("span", { class: c.ok ? "muted" : "rule" }, c.reason)),
    segments(c),
    (c.notes ?? []).map((n) => h("p", { class: "muted" }, "note: ", n)),
    c.hash ? h("p", { class: "muted" }, "hash sha256:", c.hash) : null));
}

const utf8 = new TextEncoder(), text = new TextDecoder();

// segments shows what was sent and what came back, one block per read or
// write, so the boundaries where the server paused are visible. A retry
// segment (a reused connection found closed by the server, the check sent
// again on a new one) is a separator line, not a numbered segment.
function segments(c) {
  const segs = c.segments ?? [];
  if (segs.length === 0) {
    return c.sent || c.received ? [block("sent", c.sent ?? ""), block("received", c.received ?? "")]
      : h("p", { class: "muted" }, c.ok ? "Evidence dropped (older passing checks keep only their verdict)."
        : "No bytes crossed a connection.");
  }
  const data = { sent: utf8.encode(c.sent ?? ""), received: utf8.encode(c.received ?? "") };
  const retryNotes = (c.notes ?? []).filter((n) => n.endsWith(retrySuffix));
  let n = 0, retries = 0;
  return segs.map((s) => {
    if (s.dir === "retry") return retryLine(retryNotes[retries++], s);
    const bytes = data[s.dir]?.slice(s.offset, s.offset + s.len) ?? new Uint8Array();
    const kept = bytes.length < s.len ? ` (${s.len - bytes.length} bytes not kept)` : "";
    return h("div", { class: `seg ${s.dir}` },
      h("div", { class: "muted" }, `${s.dir === "sent" ? ">" : "<"} segment ${++n}: ${s.dir} ${s.len} bytes at offset ${s.offset}, +${num(s.at_ms)} ms${kept}`),
      h("pre", {}, visible(text.decode(bytes))));
  });
}

// The keepalive notes each retry as "<connection>: <what failed>; retried on
// a new connection"; the retry segment itself carries only its time.
const retrySuffix = "; retried on a new connection";

function retryLine(note, s) {
  const why = note ? note.slice(0, -retrySuffix.length)
    : "the reused connection was closed by the server";
  return h("div", { class: "seg retry" }, `— retried on a new connection: ${why}, +${num(s.at_ms)} ms —`);
}

function block(dir, s) {
  return h("div", { class: `seg ${dir}` }, h("div", { class: "muted" }, dir), h("pre", {}, visible(s)));
}

// visible shows line ends and control bytes.
function visible(s) {
  return s.replace(/\r/g, "\\r").replace(/\n/g, "\\n\n").replace(/[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]/g,
    (ch) => "\\x" + ch.charCodeAt(0).toString(16).padStart(2, "0"));
}
