// Audit log: who changed what (GET /admin/audit), filtered by entity, id, actor and action;
// the filters are in the URL. Entries come in the order they were written, a page at a time.

import {errorText, field, formatTime, h, select, table} from "../dom.js";

const ENTITIES = [["", "Any entity"], ["api_key", "Key"], ["user", "User"], ["team", "Team"],
                  ["deployment", "Deployment"]];
const ACTIONS = [["", "Any action"], ["create", "Create"], ["update", "Update"],
                 ["delete", "Delete"], ["revoke", "Revoke"], ["rotate", "Rotate"]];
const FILTERS = ["entity", "entity_id", "actor", "action"];

export function mount(view, ctx) {
  const filters = Object.fromEntries(FILTERS.map((name) => [name, ctx.params.get(name) || ""]));
  let entries = [];
  let cursor = null;
  const status = h("p", {class: "status", role: "status"}, "Loading…");
  const list = h("div", {});
  const more = h("button", {type: "button", class: "quiet", hidden: true,
                            onclick: () => load(true)}, "Load more");
  const form = h("form", {class: "filters", "aria-label": "Filter the audit log",
                          onsubmit: (event) => {
                            event.preventDefault();
                            const data = new FormData(event.target);
                            ctx.navigate(Object.fromEntries(FILTERS
                              .map((name) => [name, (data.get(name) || "").trim()])
                              .filter(([, value]) => value)));
                          }},
    field("audit-entity", "Entity", select("entity", ENTITIES, filters.entity)),
    field("audit-entity-id", "Entity id", h("input", {name: "entity_id",
                                                      value: filters.entity_id,
                                                      autocomplete: "off"})),
    field("audit-actor", "Actor (key id)", h("input", {name: "actor", value: filters.actor,
                                                       autocomplete: "off"})),
    field("audit-action", "Action", select("action", ACTIONS, filters.action)),
    h("div", {class: "field submit"}, h("button", {type: "submit"}, "Apply filters")));
  view.append(h("div", {class: "page-head"}, h("h1", {}, "Audit log")), form, status, list,
              more);

  function draw() {
    list.replaceChildren(table("Audit entries", [
      {label: "When", cell: (e) => formatTime(e.at)},
      {label: "Actor", cell: (e) => h("code", {}, e.actor)},
      {label: "Action", cell: (e) => h("span", {class: `badge action-${e.action}`}, e.action)},
      {label: "Entity", cell: (e) => e.entity},
      {label: "Entity id", cell: (e) => h("code", {}, e.entity_id)},
      {label: "Changes", cell: changes},
    ], entries.map((e) => ({item: e, attrs: {"data-action": e.action,
                                             "data-entity": e.entity}})),
    {empty: "No entry matches these filters."}));
    more.hidden = !cursor;
  }

  async function load(append = false) {
    try {
      const page = await ctx.api.get("/admin/audit", {...filters, limit: 50,
                                                      after: append ? cursor : undefined});
      entries = append ? entries.concat(page.data) : page.data;
      cursor = page.has_more ? page.last_id : null;
      status.textContent = `${entries.length} entr${entries.length === 1 ? "y" : "ies"}` +
        (cursor ? " (more below)" : "");
      draw();
    } catch (err) {
      status.textContent = "Could not load the audit log: " + errorText(err);
    }
  }

  load();
  return null;
}

/** What changed: the fields whose value differs between before and after. */
function changes(entry) {
  const before = entry.before || {};
  const after = entry.after || {};
  const names = [...new Set([...Object.keys(before), ...Object.keys(after)])]
    .filter((name) => JSON.stringify(before[name]) !== JSON.stringify(after[name]) &&
                      name !== "updated_at");
  if (!names.length) return "—";
  const show = (v) => (v === undefined ? "∅" : JSON.stringify(v));
  return h("details", {},
    h("summary", {}, names.length === 1 ? names[0] : `${names.length} fields`),
    h("ul", {class: "changes"}, names.map((name) =>
      h("li", {}, h("code", {}, name), `: ${show(before[name])} → ${show(after[name])}`))));
}
