// timeline.js: a server's state over the last hour, drawn as SVG.
import { svg } from "./dom.js";

const colors = { up: "#1f9d55", dying: "#d69e2e", down: "#d64545", draining: "#3b82f6", disabled: "#7c8595" };

// drawTimeline renders {from, to, segments: [{from, to, state}]}.
export function drawTimeline(tl) {
  const W = 1000, H = 70, top = 8, bar = 34;
  const t0 = Date.parse(tl.from), t1 = Date.parse(tl.to);
  const span = Math.max(1, t1 - t0);
  const x = (t) => ((Math.min(t1, Math.max(t0, t)) - t0) / span) * W;
  const root = svg("svg", { class: "timeline", viewBox: `0 0 ${W} ${H}`, preserveAspectRatio: "none", role: "img",
    "aria-label": "state over the last hour" });
  root.append(svg("rect", { x: 0, y: top, width: W, height: bar, fill: "#eef0f3" }));
  for (const s of tl.segments) {
    const a = x(Date.parse(s.from)), b = x(Date.parse(s.to));
    const r = svg("rect", { x: a, y: top, width: Math.max(2, b - a), height: bar, fill: colors[s.state] ?? "#999",
      "data-state": s.state });
    r.append(svg("title", {}, `${s.state}: ${new Date(s.from).toLocaleTimeString()} – ${new Date(s.to).toLocaleTimeString()}`));
    root.append(r);
  }
  for (let m = 0; m <= 60; m += 10) {
    const px = W - (m / 60) * W;
    root.append(svg("line", { x1: px, x2: px, y1: top + bar, y2: top + bar + 5, stroke: "#999" }));
    root.append(svg("text", { x: Math.min(W - 22, Math.max(2, px - 10)), y: H - 6 }, m === 0 ? "now" : `-${m}m`));
  }
  return root;
}
