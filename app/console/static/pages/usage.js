// Usage: requests, tokens, cost and errors per day and per model, key, team or deployment.
// Every number is one GET /admin/usage answered: the day totals (group_by=day), the groups
// (group_by=<dimension>) and, for the largest groups, their own days (group_by=day filtered
// by the group); what the largest groups leave of a day is drawn as "other". The date range,
// grouping and metric are in the URL (?start=YYYY-MM-DD&end=YYYY-MM-DD&group_by=&metric=).

import {horizontalBars, responsive, stackedColumns} from "../chart.js";
import {
  errorText, field, formatCompact, formatInt, formatUsd, h, s, select, table, utcDay,
} from "../dom.js";

const DIMENSIONS = [["model", "Model"], ["key", "Key"], ["team", "Team"],
                    ["deployment", "Deployment"]];
const FILTER_OF = {model: "model", key: "key_id", team: "team_id", deployment: "deployment"};
const METRICS = {
  requests: {label: "Requests", of: (r) => r.requests, format: formatCompact},
  tokens: {label: "Tokens", of: (r) => r.total_tokens, format: formatCompact},
  cost: {label: "Cost (USD)", of: (r) => r.cost, format: formatUsd},
  errors: {label: "Errors", of: (r) => r.errors, format: formatCompact},
};
const SERIES = 5; // groups drawn in their own colour; the rest is "other"
const DAY = /^\d{4}-\d{2}-\d{2}$/;
const MAX_DAYS = 366;

function shift(day, days) {
  const date = new Date(`${day}T00:00:00Z`);
  date.setUTCDate(date.getUTCDate() + days);
  return date.toISOString().slice(0, 10);
}

/** The range, grouping and metric the URL asks for (defaults: the last 30 days by model). */
export function readParams(params) {
  let end = DAY.test(params.get("end") || "") ? params.get("end") : utcDay(0);
  let start = DAY.test(params.get("start") || "") ? params.get("start") : shift(end, -29);
  if (start > end) [start, end] = [end, start];
  if (shift(start, MAX_DAYS) <= end) start = shift(end, -(MAX_DAYS - 1));
  const groupBy = FILTER_OF[params.get("group_by")] ? params.get("group_by") : "model";
  const metric = METRICS[params.get("metric")] ? params.get("metric") : "requests";
  return {start, end, groupBy, metric};
}

function daysOf(start, end) {
  const out = [];
  for (let day = start; day <= end; day = shift(day, 1)) out.push(day);
  return out;
}

export function mount(view, ctx) {
  const {api} = ctx;
  const {start, end, groupBy, metric} = readParams(ctx.params);
  const m = METRICS[metric];
  const dimension = DIMENSIONS.find(([v]) => v === groupBy)[1].toLowerCase();
  const stops = [];
  let alive = true;

  const form = h("form", {class: "filters", "aria-label": "Usage range and grouping",
                          onsubmit: (event) => {
                            event.preventDefault();
                            const data = new FormData(event.target);
                            ctx.navigate(Object.fromEntries(data.entries()));
                          }},
    field("usage-start", "From (UTC)", h("input", {type: "date", name: "start", value: start,
                                                   required: true})),
    field("usage-end", "To (UTC, inclusive)", h("input", {type: "date", name: "end",
                                                          value: end, required: true})),
    field("usage-group", "Group by", select("group_by", DIMENSIONS, groupBy)),
    field("usage-metric", "Metric", select("metric", Object.entries(METRICS)
      .map(([v, d]) => [v, d.label]), metric)),
    h("div", {class: "field submit"}, h("button", {type: "submit"}, "Show")));
  const quick = h("div", {class: "buttons", role: "group", "aria-label": "Quick ranges"},
    [7, 30, 90].map((n) => h("button", {type: "button", class: "small quiet",
      onclick: () => ctx.navigate({start: shift(utcDay(0), 1 - n), end: utcDay(0),
                                   group_by: groupBy, metric})}, `Last ${n} days`)));
  const status = h("p", {class: "status", role: "status"}, "Loading…");
  const totals = h("dl", {class: "totals"});
  const perDay = h("section", {"aria-labelledby": "usage-per-day"});
  const perGroup = h("section", {"aria-labelledby": "usage-per-group"});
  view.append(h("div", {class: "page-head"}, h("h1", {}, "Usage")), form, quick, status,
              totals, perDay, perGroup);

  const range = {start: `${start}T00:00:00Z`, end: `${shift(end, 1)}T00:00:00Z`};
  (async () => {
    const [byDay, byGroup] = await Promise.all([
      api.get("/admin/usage", {...range, group_by: "day"}),
      api.get("/admin/usage", {...range, group_by: groupBy})]);
    const top = byGroup.groups.filter((g) => g.group !== null && m.of(g) > 0)
      .sort((a, b) => m.of(b) - m.of(a)).slice(0, SERIES);
    const parts = await Promise.all(top.map((g) => api.get("/admin/usage", {
      ...range, group_by: "day", [FILTER_OF[groupBy]]: g.group})));
    if (!alive) return;
    draw(byDay, byGroup, top, parts);
    status.textContent = `${start} to ${end} (UTC), by ${dimension}`;
  })().catch((err) => {
    if (alive) status.textContent = "Could not load usage: " + errorText(err);
  });

  function draw(byDay, byGroup, top, parts) {
    const t = byDay.totals;
    totals.replaceChildren(...[
      ["requests", "Requests", formatInt(t.requests)],
      ["tokens", "Tokens", `${formatInt(t.total_tokens)}`],
      ["cost", "Cost", formatUsd(t.cost)],
      ["errors", "Errors", formatInt(t.errors)],
      ["cache_hits", "Cache hits", formatInt(t.cache_hits)],
    ].map(([name, label, value]) => h("div", {class: "total"},
      h("dt", {}, label), h("dd", {"data-total": name}, value))));

    const days = daysOf(start, end);
    const valueOn = (report) => {
      const byDate = new Map(report.groups.map((g) => [g.group, m.of(g)]));
      return days.map((day) => byDate.get(day) || 0);
    };
    const series = top.map((g, i) => ({name: g.group, values: valueOn(parts[i])}));
    const dayTotals = valueOn(byDay);
    const other = dayTotals.some((total, i) =>
      total - series.reduce((sum, part) => sum + part.values[i], 0) > 1e-12);
    const legend = h("ul", {class: "legend"},
      series.map((part, i) => legendItem(`series-${i}`, part.name)),
      other ? legendItem("series-other", `other ${dimension}s`) : null);
    const columns = h("div", {class: "chart-box", id: "usage-day-chart"});
    perDay.replaceChildren(
      h("h2", {id: "usage-per-day"}, `${m.label} per day`), legend, columns,
      h("details", {}, h("summary", {}, "Per day, as a table"),
        table(`${m.label} per day`, [
          {label: "Day", cell: (r) => r.group},
          {label: "Requests", cell: (r) => formatInt(r.requests)},
          {label: "Tokens", cell: (r) => formatInt(r.total_tokens)},
          {label: "Cost", cell: (r) => formatUsd(r.cost)},
          {label: "Errors", cell: (r) => formatInt(r.errors)},
        ], byDay.groups.map((r) => ({item: r})), {empty: "No requests in this range."})));
    stops.push(responsive(columns, (width) => stackedColumns(width, {
      days, totals: dayTotals, series, format: m.format,
      label: `${m.label} per day from ${start} to ${end}, by ${dimension}: ` +
             `${m.format(m.of(t))} in all`})));

    const rows = [...byGroup.groups].sort((a, b) => m.of(b) - m.of(a));
    const bars = h("div", {class: "chart-box", id: "usage-group-chart"});
    perGroup.replaceChildren(
      h("h2", {id: "usage-per-group"}, `${m.label} by ${dimension}`), bars,
      table(`Usage by ${dimension}`, [
        {label: dimension[0].toUpperCase() + dimension.slice(1),
         cell: (r) => h("code", {}, r.group ?? "(none)")},
        {label: "Requests", cell: (r) => formatInt(r.requests)},
        {label: "Prompt tokens", cell: (r) => formatInt(r.prompt_tokens)},
        {label: "Completion tokens", cell: (r) => formatInt(r.completion_tokens)},
        {label: "Cost", cell: (r) => formatUsd(r.cost)},
        {label: "Errors", cell: (r) => formatInt(r.errors)},
        {label: "Cache hits", cell: (r) => formatInt(r.cache_hits)},
      ], rows.map((r) => ({item: r, attrs: {"data-group": r.group ?? ""}})),
      {empty: "No requests in this range."}));
    const index = new Map(top.map((g, i) => [g.group, i]));
    stops.push(responsive(bars, (width) => horizontalBars(width, {
      rows: rows.slice(0, 12).map((r) => ({
        label: r.group ?? "(none)", value: m.of(r),
        cls: index.has(r.group) ? `series-${index.get(r.group)}` : "series-other"})),
      format: m.format, label: `${m.label} by ${dimension}`})));
  }

  return () => {
    alive = false;
    stops.forEach((stop) => stop());
  };
}

function legendItem(cls, label) {
  return h("li", {}, s("svg", {width: 12, height: 12, "aria-hidden": "true"},
                       s("rect", {width: 12, height: 12, class: cls})), " ", label);
}
