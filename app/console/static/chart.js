// Hand-written SVG charts. Drawn at the container's own width (and again when it changes),
// so text stays readable from a phone to a desktop. Each chart is an image with a summary
// label; the numbers are also in a table next to it, and each bar carries its value
// (data-value) and a <title> tooltip.

import {s} from "./dom.js";

const FONT = 12;

/** Axis ticks from 0 to at least `max`, at most 4 steps of 1, 2 or 5 x 10^n (whole numbers
 * for counts, so every label is exact). */
function ticks(max, whole) {
  const rough = Math.max(max, whole ? 4 : 1e-9) / 4;
  const power = 10 ** Math.floor(Math.log10(rough));
  let step = [1, 2, 5, 10].map((f) => f * power).find((v) => v >= rough);
  if (whole) step = Math.max(1, Math.round(step));
  const count = Math.max(1, Math.ceil(max / step - 1e-9));
  return Array.from({length: count + 1}, (_, i) => i * step);
}

/**
 * Redraw `draw(width)` into `container` whenever its width changes; returns a function that
 * stops watching.
 */
export function responsive(container, draw) {
  let width = 0;
  const paint = () => {
    const next = Math.max(240, Math.floor(container.clientWidth));
    if (next === width) return;
    width = next;
    container.replaceChildren(draw(width));
  };
  const observer = new ResizeObserver(paint);
  observer.observe(container);
  paint();
  return () => observer.disconnect();
}

/**
 * Stacked columns, one per day: `days` (YYYY-MM-DD), `totals[i]` the day's value,
 * `series` [{name, values}] the stacked parts (the rest of a total is drawn as "other").
 */
export function stackedColumns(width, {days, totals, series, format, label}) {
  const height = 240;
  const margin = {top: 12, right: 8, bottom: 28, left: 60};
  const plotW = width - margin.left - margin.right;
  const plotH = height - margin.top - margin.bottom;
  const whole = totals.every(Number.isInteger);
  const marks = ticks(Math.max(0, ...totals), whole);
  const max = marks[marks.length - 1];
  const y = (v) => margin.top + plotH - (v / max) * plotH;
  const band = plotW / Math.max(1, days.length);
  const barW = Math.max(1, Math.min(48, band * 0.7));
  const svg = s("svg", {width, height, viewBox: `0 0 ${width} ${height}`, role: "img",
                        "aria-label": label, class: "chart"});
  for (const v of marks) {
    svg.append(
      s("line", {x1: margin.left, x2: width - margin.right, y1: y(v), y2: y(v), class: "grid"}),
      s("text", {x: margin.left - 6, y: y(v) + FONT / 3, "text-anchor": "end", class: "tick"},
        format(v)));
  }
  const every = Math.max(1, Math.ceil(days.length / Math.max(1, Math.floor(plotW / 56))));
  days.forEach((day, i) => {
    const x = margin.left + band * i + (band - barW) / 2;
    const group = s("g", {class: "bar", "data-day": day, "data-value": totals[i]},
                    s("title", {}, `${day}: ${format(totals[i])}`));
    let base = 0;
    const parts = series.map((part, index) => ({value: part.values[i] || 0,
                                                 cls: `series-${index}`}));
    const rest = totals[i] - parts.reduce((sum, part) => sum + part.value, 0);
    if (rest > 1e-12) parts.push({value: rest, cls: "series-other"});
    for (const part of parts) {
      if (part.value <= 0) continue;
      const top = y(base + part.value);
      group.append(s("rect", {x, y: top, width: barW, height: Math.max(1, y(base) - top),
                              class: part.cls}));
      base += part.value;
    }
    svg.append(group);
    if (i % every === 0) {
      svg.append(s("text", {x: x + barW / 2, y: height - 8, "text-anchor": "middle",
                            class: "tick"}, day.slice(5)));
    }
  });
  svg.append(s("line", {x1: margin.left, x2: width - margin.right, y1: y(0), y2: y(0),
                        class: "axis"}));
  return svg;
}

/** Horizontal bars, one per row [{label, value, cls}], label above its bar. */
export function horizontalBars(width, {rows, format, label}) {
  const rowH = 40;
  const height = Math.max(rowH, rows.length * rowH) + 4;
  const max = Math.max(0, ...rows.map((r) => r.value)) || 1;
  const valueW = 96;
  const barMax = Math.max(40, width - valueW - 8);
  const svg = s("svg", {width, height, viewBox: `0 0 ${width} ${height}`, role: "img",
                        "aria-label": label, class: "chart"});
  rows.forEach((row, i) => {
    const top = i * rowH;
    const barW = Math.max(row.value > 0 ? 2 : 0, (row.value / max) * barMax);
    svg.append(s("g", {class: "bar", "data-group": row.label, "data-value": row.value},
      s("title", {}, `${row.label}: ${format(row.value)}`),
      s("text", {x: 0, y: top + FONT + 2, class: "label"}, row.label),
      s("rect", {x: 0, y: top + FONT + 8, width: barW, height: 14, class: row.cls}),
      s("text", {x: barW + 6, y: top + FONT + 19, class: "tick"}, format(row.value))));
  });
  return svg;
}
