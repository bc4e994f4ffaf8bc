// Routing: every group and deployment with breaker state, in-flight requests, latency and
// recent failures (GET /admin/routing), refreshed every few seconds while the page is shown.
// Counters are those of the worker process that answered (its pid is shown); breaker state
// is shared by every worker when Redis is configured.

import {errorText, formatInt, h, table} from "../dom.js";

const INTERVAL_MS = 2000;

const ms = (v) => (v === null || v === undefined ? "—" : `${Math.round(v)} ms`);
const secs = (v) => (v ? `${v.toFixed(1)} s` : "—");

export function mount(view, ctx) {
  let timer = null;
  let stopped = false;
  let paused = false;
  let refreshes = 0;
  const status = h("p", {class: "status", id: "routing-status"}, "Loading…");
  const pause = h("button", {type: "button", class: "quiet", "aria-pressed": "false",
                             onclick: () => {
                               paused = !paused;
                               // A toggle keeps its name; aria-pressed says its state.
                               pause.setAttribute("aria-pressed", String(paused));
                               if (!paused) refresh();
                             }}, "Pause live updates");
  const groups = h("div", {id: "routing-groups"});
  const error = h("p", {class: "error", role: "alert"});
  view.append(h("div", {class: "page-head"}, h("h1", {}, "Routing"), pause), status, error,
              groups);

  async function refresh() {
    clearTimeout(timer);
    if (stopped) return;
    if (!paused && !document.hidden) {
      try {
        draw(await ctx.api.get("/admin/routing"));
        error.textContent = "";
      } catch (err) {
        if (stopped || err.status === 401) return;
        error.textContent = "Could not refresh: " + errorText(err);
      }
    }
    if (!stopped && !paused) timer = setTimeout(refresh, INTERVAL_MS);
  }

  function draw(report) {
    if (stopped) return;
    refreshes += 1;
    view.dataset.refreshes = String(refreshes);
    const cooldown = report.cooldown || {};
    status.textContent = `Updated ${new Date().toISOString().slice(11, 19)} UTC · worker ` +
      `${report.pid} · breakers: ${report.breaker_backend} · a deployment cools down for ` +
      `${cooldown.cooldown_s} s after ${cooldown.failures} failures in ${cooldown.window_s} s`;
    const sections = (report.groups || []).map((group) => h("section", {
      class: "group", "aria-labelledby": `group-${cssId(group.name)}`, "data-group": group.name},
      h("h2", {id: `group-${cssId(group.name)}`}, group.name),
      h("p", {class: "meta"}, `strategy ${group.strategy} · retries ${group.retries ?? "—"}` +
        (group.fallbacks && group.fallbacks.length ? ` · fallbacks ${group.fallbacks.join(", ")}`
                                                   : "") +
        (group.context_window_fallbacks && group.context_window_fallbacks.length
          ? ` · context-window fallbacks ${group.context_window_fallbacks.join(", ")}` : "")),
      table(`Deployments of ${group.name}`, [
        {label: "Deployment", cell: (d) => h("code", {}, d.id)},
        {label: "Breaker", cell: (d) => h("span", {class: `badge state-${d.state}`},
                                           d.state.replace("_", "-"))},
        {label: "Opens again in", cell: (d) => secs(d.open_for_s)},
        {label: "In flight", cell: (d) => formatInt(d.in_flight)},
        {label: "Latency (avg)", cell: (d) => ms(d.latency_ewma_ms)},
        {label: "First token (avg)", cell: (d) => ms(d.ttft_ewma_ms)},
        {label: "Recent failures", cell: (d) => formatInt(d.recent_failures)},
        {label: "OK / failed", cell: (d) => `${formatInt(d.successes)} / ${formatInt(d.failures)}`},
        {label: "Last minute", cell: (d) => `${formatInt(d.requests_last_minute)} req · ` +
                                            `${formatInt(d.tokens_last_minute)} tok`},
      ], (group.deployments || []).map((d) => ({item: d, attrs: {"data-deployment": d.id,
                                                                 "data-state": d.state}})))));
    const autos = (report.auto_routers || []).length ? h("section", {class: "group"},
      h("h2", {}, "Auto routers"),
      h("ul", {}, report.auto_routers.map((r) => h("li", {},
        h("code", {}, r.name), ` → tiers ${r.tiers.join(", ")} (default ${r.default_tier})`))))
      : null;
    groups.replaceChildren(...sections, ...(autos ? [autos] : []));
  }

  refresh();
  return () => {
    stopped = true;
    clearTimeout(timer);
  };
}

function cssId(name) {
  return name.replace(/[^A-Za-z0-9_-]/g, "_");
}
