// run.mjs: load pages in headless Chromium, run the page's own checks
// (page/checks.js) and print what each page saw as one JSON object on stdout.
//
//   node run.mjs --profile DIR --screenshots DIR --plan '{"pages": [
//       {"name": "allowed", "url": "http://127.0.0.1:8081/", "api": "http://127.0.0.1:8082/api/", "ws": "ws://127.0.0.1:8081/ws"},
//       {"name": "denied",  "url": "http://127.0.0.1:8083/", "api": "http://127.0.0.1:8082/api/"}]}'
//
// The browser is Debian's chromium (--chromium, default /usr/bin/chromium),
// never one playwright downloads. --profile must be a fresh directory: a
// reused profile would keep cookies and cached preflights between runs.
// Logs go to stderr; the exit status is non-zero only when the browser could
// not be driven (a failed check is an outcome in the JSON, for the Go test to
// judge).
import { chromium } from "playwright-core";
import { parseArgs } from "node:util";
import path from "node:path";

const { values: opt } = parseArgs({
  options: {
    chromium: { type: "string", default: "/usr/bin/chromium" },
    profile: { type: "string" },
    screenshots: { type: "string" },
    plan: { type: "string" },
    "timeout-ms": { type: "string", default: "40000" },
  },
});
if (!opt.profile || !opt.plan) {
  console.error("usage: node run.mjs --profile DIR --plan JSON [--screenshots DIR] [--chromium PATH] [--timeout-ms N]");
  process.exit(2);
}
const plan = JSON.parse(opt.plan);
const timeout = Number(opt["timeout-ms"]);

// The flags the test needs: no sandbox (root in CI), no GPU, no QUIC, and
// nothing that phones home or updates itself.
const args = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
  "--no-proxy-server", // everything is on loopback
];

const watchdog = setTimeout(() => {
  console.error(`run.mjs: gave up after ${timeout} ms`);
  process.exit(3);
}, timeout + 5000);

// visit loads one page, records its console, failed requests and the CORS
// preflights Chromium made (seen through the DevTools protocol, since a
// preflight is not a page request), runs the checks and takes a screenshot.
async function visit(context, p) {
  const page = await context.newPage();
  page.setDefaultTimeout(timeout);
  const seen = { console: [], failedRequests: [], preflights: [] };
  page.on("console", (m) => seen.console.push({ type: m.type(), text: m.text() }));
  page.on("pageerror", (e) => seen.console.push({ type: "pageerror", text: String(e) }));
  page.on("requestfailed", (r) =>
    seen.failedRequests.push({ method: r.method(), url: r.url(), error: r.failure()?.errorText ?? "" }),
  );
  const cdp = await context.newCDPSession(page);
  const preflights = new Map();
  cdp.on("Network.requestWillBeSent", (e) => {
    // Chromium reports a preflight as type Other with initiator "preflight".
    if (e.initiator?.type === "preflight") {
      preflights.set(e.requestId, { url: e.request.url, method: e.request.method, headers: e.request.headers, status: 0 });
    }
  });
  cdp.on("Network.responseReceived", (e) => {
    const pf = preflights.get(e.requestId);
    if (pf) {
      pf.status = e.response.status;
      pf.responseHeaders = e.response.headers;
    }
  });
  await cdp.send("Network.enable");

  const resp = await page.goto(p.url, { waitUntil: "load" });
  const result = await page.evaluate((a) => window.fulcrumChecks(a), { api: p.api, ws: p.ws ?? "" });
  seen.preflights = [...preflights.values()];
  let screenshot = "";
  if (opt.screenshots) {
    screenshot = path.join(opt.screenshots, `${p.name}.png`);
    await page.screenshot({ path: screenshot, fullPage: true });
  }
  await page.close();
  return { status: resp?.status() ?? 0, result, ...seen, screenshot };
}

const context = await chromium.launchPersistentContext(opt.profile, {
  executablePath: opt.chromium,
  headless: true,
  args,
  timeout,
});
try {
  const out = { browser: context.browser()?.version() ?? "", pages: {} };
  for (const p of plan.pages) {
    out.pages[p.name] = await visit(context, p);
  }
  process.stdout.write(JSON.stringify(out) + "\n");
} finally {
  await context.close();
  clearTimeout(watchdog);
}
