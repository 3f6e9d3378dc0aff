// dashboard.mjs: drive fulcrum's admin dashboard in headless Chromium and
// print what happened as one JSON object on stdout (the Go test judges it).
//
//   node dashboard.mjs --profile DIR --screenshots DIR --plan '{"url": "http://127.0.0.1:9090/",
//       "token": "...", "badToken": "...", "control": "http://127.0.0.1:PORT",
//       "pool": "app", "servers": ["a","b","c"], "stop": "b", "drain": "a"}'
//
// Steps: a bad token is refused at the login form; the right one shows every
// server up; after the test stops server `stop` (GET control/stop), the page
// shows it down without a reload; the drain button, confirmed in the
// dialog, drains server `drain`; the server page draws its timeline and
// transcript. Screenshots of each step go to --screenshots. A failed step
// is an outcome in the JSON ("error"), not a crash.
import { chromium } from "playwright-core";
import { parseArgs } from "node:util";
import path from "node:path";

const { values: opt } = parseArgs({
  options: {
    chromium: { type: "string", default: "/usr/bin/chromium" },
    profile: { type: "string" },
    screenshots: { type: "string" },
    plan: { type: "string" },
    "timeout-ms": { type: "string", default: "20000" },
  },
});
if (!opt.profile || !opt.plan) {
  console.error("usage: node dashboard.mjs --profile DIR --plan JSON [--screenshots DIR] [--chromium PATH]");
  process.exit(2);
}
const plan = JSON.parse(opt.plan);
const timeout = Number(opt["timeout-ms"]);
const args = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
  "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-proxy-server"];
const watchdog = setTimeout(() => { console.error(`dashboard.mjs: gave up after ${timeout} ms`); process.exit(3); }, timeout + 10000);

const out = { steps: [], console: [], screenshots: [] };
async function shot(page, name) {
  if (!opt.screenshots) return;
  const file = path.join(opt.screenshots, `${name}.png`);
  await page.screenshot({ path: file, fullPage: true });
  out.screenshots.push(file);
}
const row = (s) => `tr[data-pool="${plan.pool}"][data-server="${s}"]`;

const context = await chromium.launchPersistentContext(opt.profile, {
  executablePath: opt.chromium, headless: true, args, timeout, viewport: { width: 1400, height: 900 },
});
try {
  out.browser = context.browser()?.version() ?? "";
  const page = context.pages()[0] ?? (await context.newPage());
  page.setDefaultTimeout(timeout);
  page.on("console", (m) => out.console.push({ type: m.type(), text: m.text() }));
  page.on("pageerror", (e) => out.console.push({ type: "pageerror", text: String(e) }));
  let loads = 0;
  page.on("load", () => loads++);

  // 1. Not logged in: the login form; a bad token is refused.
  await page.goto(plan.url);
  out.loginURL = page.url();
  await page.fill("#token", plan.badToken);
  const [bad] = await Promise.all([
    page.waitForResponse((r) => r.url().endsWith("/login") && r.request().method() === "POST"),
    page.click("#login-submit"),
  ]);
  await page.waitForSelector("#login-error");
  out.badLogin = { status: bad.status(), error: await page.textContent("#login-error"), url: page.url() };
  await shot(page, "login-refused");

  // 2. The right token: every server of the pool, up.
  await page.fill("#token", plan.token);
  await Promise.all([page.waitForURL((u) => !u.pathname.startsWith("/login")), page.click("#login-submit")]);
  // The refused login's 401 is in the console; what follows must be clean.
  out.loginConsole = out.console.splice(0);
  await page.waitForSelector(`${row(plan.servers.at(-1))}[data-state="up"]`);
  for (const s of plan.servers) await page.waitForSelector(`${row(s)}[data-state="up"]`);
  out.serversShown = await page.$$eval("tr[data-server]", (rows) => rows.map((r) => ({
    pool: r.dataset.pool, server: r.dataset.server, state: r.dataset.state })));
  out.listenersShown = await page.$$eval("tr[data-listener]", (rows) => rows.map((r) => r.dataset.listener));
  out.cookieHttpOnly = (await context.cookies()).filter((c) => c.name === "fulcrum_admin").map((c) => ({ httpOnly: c.httpOnly, sameSite: c.sameSite }));
  out.cookieVisibleToScript = await page.evaluate(() => document.cookie.includes("fulcrum_admin"));
  await shot(page, "dashboard");
  const loadsBefore = loads;

  // 3. The test stops a backend: the page shows it down, no reload.
  const stopAt = Date.now();
  const resp = await fetch(`${plan.control}/stop`);
  out.stopStatus = resp.status;
  await page.waitForSelector(`${row(plan.stop)}[data-state="down"]`);
  out.downAfterMs = Date.now() - stopAt;
  out.reloadsWhileWaiting = loads - loadsBefore;
  await shot(page, "server-down");

  // 4. Drain, through the confirmation dialog.
  await page.click(`${row(plan.drain)} button[data-action="drain"]`);
  await page.waitForSelector("#confirm[open]");
  out.confirmText = await page.textContent("#confirm-text");
  await shot(page, "drain-confirm");
  await page.click("#confirm-ok");
  await page.waitForSelector(`${row(plan.drain)}[data-state="draining"]`);
  out.drainShown = true;
  await shot(page, "drained");

  // 5. The stopped server's page: timeline and transcript.
  await page.goto(`${new URL(plan.url).origin}/#/server/${plan.pool}/${plan.stop}`);
  await page.waitForSelector("svg.timeline rect[data-state='down']");
  await page.waitForSelector("#transcript details[data-ok='false']");
  out.serverPage = {
    timelineStates: await page.$$eval("svg.timeline rect[data-state]", (rs) => rs.map((r) => r.dataset.state)),
    failReason: await page.textContent("#transcript details[data-ok='false'] .rule"),
    connections: await page.$$eval("#transcript [data-field='connection']", (es) => es.map((e) => e.textContent)),
  };
  await shot(page, "server-page");
} catch (e) {
  out.error = String(e?.stack ?? e);
} finally {
  process.stdout.write(JSON.stringify(out) + "\n");
  await context.close();
  clearTimeout(watchdog);
}
