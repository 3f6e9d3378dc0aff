// checks.js: what the page does, called by ../run.mjs as
// window.fulcrumChecks({api, ws}). Every step records what the page saw (an
// outcome, never an assertion: the Go test judges) and shows it in the table,
// so the screenshot tells the same story as the JSON.
"use strict";

document.getElementById("origin").textContent = location.origin;

function show(name, r) {
  const tr = document.createElement("tr");
  tr.className = r.ok ? "ok" : "fail";
  const detail = r.ok ? JSON.stringify(r.body ?? r.echoes ?? r) : r.error;
  for (const text of [name, r.ok ? "ok" : "failed", detail]) {
    const td = document.createElement("td");
    td.textContent = text.length > 300 ? text.slice(0, 300) + "…" : text;
    tr.appendChild(td);
  }
  document.getElementById("steps").appendChild(tr);
}

// step runs fn and turns its result or its error into an outcome.
async function step(name, fn) {
  let r;
  try {
    r = { ok: true, ...(await fn()) };
  } catch (e) {
    r = { ok: false, error: String(e && e.message ? `${e.name}: ${e.message}` : e) };
  }
  show(name, r);
  return r;
}

async function fetchJSON(url, init) {
  const resp = await fetch(url, init);
  return {
    status: resp.status,
    type: resp.type,
    contentType: resp.headers.get("content-type"),
    // Readable only when Access-Control-Expose-Headers names them.
    requestId: resp.headers.get("x-request-id"),
    secret: resp.headers.get("x-secret"),
    body: await resp.json(),
  };
}

// xhrJSON: the same through XMLHttpRequest, the Ajax API of old.
function xhrJSON(method, url, headers) {
  return new Promise((resolve, reject) => {
    const x = new XMLHttpRequest();
    x.open(method, url);
    x.withCredentials = true;
    for (const [k, v] of Object.entries(headers)) x.setRequestHeader(k, v);
    x.responseType = "json";
    x.onload = () => resolve({ status: x.status, body: x.response });
    x.onerror = () => reject(new Error(`XMLHttpRequest error (status ${x.status})`));
    x.send();
  });
}

function sameBytes(a, b) {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

// webSocketEcho sends each message, waits for its echo, then closes with 1000.
function webSocketEcho(url) {
  const big = new Uint8Array(70000); // > 65535: a 64-bit frame length
  for (let i = 0; i < big.length; i++) big[i] = (i * 7) & 255;
  const messages = [
    "hello 1",
    "héllo ✓ 2 — utf-8",
    new Uint8Array([0, 1, 2, 127, 128, 254, 255]),
    big,
    "x".repeat(20000),
  ];
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url);
    ws.binaryType = "arraybuffer";
    const echoes = [];
    let i = 0;
    const sendNext = () => {
      if (i === messages.length) {
        ws.close(1000, "done");
        return;
      }
      ws.send(messages[i]);
    };
    ws.onopen = sendNext;
    ws.onmessage = (ev) => {
      const sent = messages[i];
      const text = typeof sent === "string";
      const got = ev.data;
      const ok = text ? got === sent : got instanceof ArrayBuffer && sameBytes(new Uint8Array(got), sent);
      echoes.push({ kind: text ? "text" : "binary", bytes: text ? new TextEncoder().encode(sent).length : sent.length, same: ok });
      i++;
      sendNext();
    };
    ws.onerror = () => reject(new Error(`WebSocket error after ${echoes.length} echoes`));
    ws.onclose = (ev) => resolve({ echoes, close: { code: ev.code, reason: ev.reason, wasClean: ev.wasClean } });
  });
}

window.fulcrumChecks = async function ({ api, ws }) {
  const out = { origin: location.origin };
  // A simple (unpreflighted) GET without credentials: the server answers
  // "Access-Control-Allow-Origin: *" itself, which fulcrum's policy replaces.
  out.simple = await step("simple GET", () => fetchJSON(api + "public"));
  // A simple credentialed POST: the server sets a cookie.
  out.login = await step("login (POST, credentials)", () => fetchJSON(api + "login", { method: "POST", credentials: "include" }));
  // PUT with a custom header and a JSON body: the browser preflights it.
  out.put = await step("PUT + custom header (preflight)", () =>
    fetchJSON(api + "item", {
      method: "PUT",
      credentials: "include",
      headers: { "Content-Type": "application/json", "X-Fulcrum-Test": "put" },
      body: JSON.stringify({ n: 42, text: "héllo" }),
    }),
  );
  out.xhr = await step("XHR GET + custom header (preflight)", () => xhrJSON("GET", api + "whoami", { "X-Fulcrum-Test": "xhr" }));
  if (ws) out.ws = await step("WebSocket echo", () => webSocketEcho(ws));
  document.title = "fulcrum browser test: done";
  return out;
};
