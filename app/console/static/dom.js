// Small DOM helpers: elements are built with textContent and attributes, never from HTML
// strings, so nothing the API returns can become markup.

const SVG_NS = "http://www.w3.org/2000/svg";

function fill(el, attrs, children) {
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (name === "text") el.textContent = value;
    else if (name === "class") el.setAttribute("class", value);
    else if (name.startsWith("on")) el.addEventListener(name.slice(2), value);
    else if (name === "dataset") Object.assign(el.dataset, value);
    else if (name === "value" || name === "checked" || name === "selected") el[name] = value;
    else el.setAttribute(name, value === true ? "" : String(value));
  }
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : String(child));
  }
  return el;
}

/** An HTML element: h("button", {type: "button", onclick}, "Label"). */
export function h(tag, attrs, ...children) {
  return fill(document.createElement(tag), attrs, children);
}

/** An SVG element, same calling convention as h(). */
export function s(tag, attrs, ...children) {
  return fill(document.createElementNS(SVG_NS, tag), attrs, children);
}

const INTEGER = new Intl.NumberFormat("en-US", {maximumFractionDigits: 0});
const COMPACT = new Intl.NumberFormat("en-US", {notation: "compact", maximumFractionDigits: 1});

export function formatInt(value) {
  return value === null || value === undefined ? "—" : INTEGER.format(value);
}

export function formatCompact(value) {
  return Math.abs(value) < 10000 ? INTEGER.format(value) : COMPACT.format(value);
}

/** USD with enough decimals for fractions of a cent (model calls are cheap). */
export function formatUsd(value) {
  if (value === null || value === undefined) return "—";
  const digits = value !== 0 && Math.abs(value) < 0.01 ? 6 : 2;
  return "$" + value.toFixed(digits);
}

/** An ISO time as "2026-11-23 14:05 UTC" (the usage days are UTC days too). */
export function formatTime(iso) {
  if (!iso) return "—";
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return iso;
  return date.toISOString().slice(0, 16).replace("T", " ") + " UTC";
}

/** Today as YYYY-MM-DD in UTC, shifted by `days`. */
export function utcDay(days = 0) {
  const date = new Date();
  date.setUTCDate(date.getUTCDate() + days);
  return date.toISOString().slice(0, 10);
}

/** A table that becomes labelled cards on narrow screens (each cell has data-label). */
export function table(caption, columns, rows, {empty = "Nothing to show."} = {}) {
  const head = h("thead", {}, h("tr", {}, columns.map((c) => h("th", {scope: "col"}, c.label))));
  const body = h("tbody", {});
  for (const row of rows) {
    body.append(h("tr", row.attrs || {}, columns.map((c) => {
      const value = c.cell(row.item);
      // One wrapper, so the cell is one item of the card layout's label | value grid.
      return h("td", {"data-label": c.label, class: c.class}, h("div", {}, value));
    })));
  }
  if (!rows.length) {
    body.append(h("tr", {}, h("td", {colspan: columns.length, class: "empty"}, empty)));
  }
  return h("div", {class: "table-wrap"},
    h("table", {class: "cards"}, h("caption", {class: "visually-hidden"}, caption), head, body));
}

/** A labelled form control; `control` is the input/select element (its id is set here). */
export function field(id, label, control, hint) {
  control.id = id;
  const hintEl = hint ? h("small", {id: id + "-hint", class: "hint"}, hint) : null;
  if (hintEl) control.setAttribute("aria-describedby", hintEl.id);
  return h("div", {class: "field"}, h("label", {for: id}, label), control, hintEl);
}

export function select(name, options, value) {
  return h("select", {name}, options.map(([v, label]) =>
    h("option", {value: v, selected: v === (value ?? "")}, label)));
}

/**
 * A modal <dialog> (focus moves into it and is kept there; Escape closes it). Resolves with
 * the value passed to close(), or null when dismissed. `build(close)` returns its content.
 */
export function modal(title, build) {
  return new Promise((resolve) => {
    const titleId = "dialog-title-" + Math.random().toString(36).slice(2);
    const dialog = h("dialog", {"aria-labelledby": titleId, class: "dialog"});
    let result = null;
    const opener = document.activeElement;
    const close = (value) => {
      result = value === undefined ? null : value;
      dialog.close();
    };
    dialog.append(h("h2", {id: titleId}, title), build(close));
    dialog.addEventListener("close", () => {
      dialog.remove(); // a secret shown in it leaves the page with it
      if (opener && opener.isConnected) opener.focus();
      resolve(result);
    });
    document.body.append(dialog);
    dialog.showModal();
  });
}

/** Ask before a change: resolves true when confirmed. */
export function confirmAction(title, text, action) {
  return modal(title, (close) => h("div", {},
    h("p", {}, text),
    h("div", {class: "actions"},
      h("button", {type: "button", class: "danger", onclick: () => close(true)}, action),
      h("button", {type: "button", class: "quiet", onclick: () => close(false)}, "Cancel"))))
    .then((answer) => answer === true);
}

/** Announce a short message to everyone (a polite live region) and show it briefly. */
export function toast(message) {
  const el = document.getElementById("toast");
  el.textContent = message;
  el.classList.add("shown");
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => el.classList.remove("shown"), 4000);
}

/** The message of an API error, naming the field when the API did. */
export function errorText(err) {
  if (err && err.param) return `${err.param}: ${err.message}`;
  return (err && err.message) || String(err);
}
