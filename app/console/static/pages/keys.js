// Keys: list and filter (GET /admin/keys), create (the secret shown once), edit limits and
// allowlists (PATCH), rotate and revoke; each key's spend in its budget period.

import {
  confirmAction, errorText, field, formatInt, formatTime, formatUsd, h, modal, select, table,
} from "../dom.js";

const STATUSES = [["", "Any status"], ["active", "Active"], ["revoked", "Revoked"],
                  ["disabled", "Disabled"], ["expired", "Expired"]];
const ROLES = [["member", "Member"], ["admin", "Admin"]];
const PERIODS = [["", "No period (all time)"], ["daily", "Daily"], ["weekly", "Weekly"],
                 ["monthly", "Monthly"], ["total", "Total"]];
const FILTERS = ["status", "role", "team_id", "user_id"];

export function mount(view, ctx) {
  const {api, params} = ctx;
  const filters = Object.fromEntries(FILTERS.map((name) => [name, params.get(name) || ""]));
  let keys = [];
  let cursor = null;
  let models = [];
  const listArea = h("div", {});
  const status = h("p", {class: "status", role: "status"});
  const more = h("button", {type: "button", class: "quiet", hidden: true, onclick: () => load(true)},
                 "Load more");

  const filterForm = h("form", {class: "filters", "aria-label": "Filter keys",
                                onsubmit: (event) => {
                                  event.preventDefault();
                                  const data = new FormData(event.target);
                                  ctx.navigate(Object.fromEntries(FILTERS
                                    .map((name) => [name, (data.get(name) || "").trim()])
                                    .filter(([, value]) => value)));
                                }},
    field("keys-status", "Status", select("status", STATUSES, filters.status)),
    field("keys-role", "Role", select("role", [["", "Any role"], ...ROLES], filters.role)),
    field("keys-team", "Team id", h("input", {name: "team_id", value: filters.team_id,
                                              autocomplete: "off"})),
    field("keys-user", "User id", h("input", {name: "user_id", value: filters.user_id,
                                              autocomplete: "off"})),
    h("div", {class: "field submit"}, h("button", {type: "submit"}, "Apply filters")));

  view.append(
    h("div", {class: "page-head"},
      h("h1", {}, "Keys"),
      h("button", {type: "button", id: "new-key", onclick: () => createKey()}, "New key")),
    filterForm, status, listArea, more);

  function draw() {
    const columns = [
      {label: "Name", cell: (k) => [h("strong", {}, k.name), h("br"), h("small", {}, k.id)]},
      {label: "Prefix", cell: (k) => h("code", {}, k.prefix + "…")},
      {label: "Role", cell: (k) => k.role},
      {label: "Status", cell: (k) => h("span", {class: `badge status-${k.status}`}, k.status)},
      {label: "Models", cell: (k) => (k.allowed_models ? k.allowed_models.join(", ") || "none"
                                                         : "every model")},
      {label: "Limits", cell: (k) => `RPM ${formatInt(k.rpm_limit)} · TPM ${formatInt(k.tpm_limit)}`},
      {label: "Spend", cell: spendCell, class: "spend"},
      {label: "Expires", cell: (k) => formatTime(k.expires_at)},
      {label: "Last used", cell: (k) => formatTime(k.last_used_at)},
      {label: "Actions", cell: actions, class: "row-actions"},
    ];
    // Redrawing replaces the buttons: keep keyboard focus on the one that had it.
    const focused = listArea.contains(document.activeElement)
      ? document.activeElement.getAttribute("aria-label") : null;
    listArea.replaceChildren(table("API keys", columns,
      keys.map((k) => ({item: k, attrs: {"data-key-id": k.id}})),
      {empty: "No key matches these filters."}));
    more.hidden = !cursor;
    if (focused) {
      const again = [...listArea.querySelectorAll("button")]
        .find((b) => b.getAttribute("aria-label") === focused && !b.disabled);
      (again || document.getElementById("new-key")).focus();
    }
  }

  function spendCell(k) {
    const spend = formatUsd(k.spend ?? 0);
    if (k.max_budget === null || k.max_budget === undefined) {
      return [spend, h("small", {}, ` ${k.budget_period || "all time"}, no budget`)];
    }
    const period = k.budget_period || "all time";
    return [
      h("span", {}, `${spend} of ${formatUsd(k.max_budget)} (${period})`),
      h("meter", {min: 0, max: k.max_budget || 1, value: k.spend ?? 0, low: k.max_budget * 0.8,
                  high: k.max_budget * 0.8, optimum: 0,
                  "aria-label": `Spend of the ${period} budget`}),
    ];
  }

  function actions(k) {
    const revoked = k.status === "revoked";
    return h("div", {class: "buttons"},
      h("button", {type: "button", class: "small", disabled: revoked,
                   "aria-label": `Edit ${k.name}`, onclick: () => editKey(k)}, "Edit"),
      h("button", {type: "button", class: "small", disabled: revoked,
                   "aria-label": `Rotate ${k.name}`, onclick: () => rotateKey(k)}, "Rotate"),
      h("button", {type: "button", class: "small danger", disabled: revoked,
                   "aria-label": `Revoke ${k.name}`, onclick: () => revokeKey(k)}, "Revoke"));
  }

  async function load(append = false) {
    status.textContent = "Loading…";
    try {
      const page = await api.get("/admin/keys", {...filters, limit: 50,
                                                 after: append ? cursor : undefined});
      keys = append ? keys.concat(page.data) : page.data;
      cursor = page.has_more ? page.last_id : null;
      status.textContent = `${keys.length} key${keys.length === 1 ? "" : "s"}` +
        (cursor ? " (more below)" : "");
      draw();
    } catch (err) {
      status.textContent = "Could not load the keys: " + errorText(err);
    }
  }

  function replace(updated) {
    keys = keys.map((k) => (k.id === updated.id ? updated : k));
    draw();
  }

  async function createKey() {
    const created = await modal("New key", (close) => keyForm(close, null, models, api));
    if (!created) return;
    keys = [...keys, created];
    draw();
    await showSecret(`Key “${created.name}” created`, created);
    ctx.toast(`Key ${created.name} created.`);
  }

  async function editKey(k) {
    const updated = await modal(`Edit “${k.name}”`, (close) => keyForm(close, k, models, api));
    if (!updated) return;
    replace(updated);
    ctx.toast(`Key ${updated.name} saved.`);
  }

  async function rotateKey(k) {
    const ok = await confirmAction(`Rotate “${k.name}”?`, "The key gets a new secret; the " +
      "current one stops working at once. Its id, limits and usage stay.", "Rotate");
    if (!ok) return;
    try {
      const rotated = await api.post(`/admin/keys/${encodeURIComponent(k.id)}/rotate`);
      replace(rotated);
      await showSecret(`New secret for “${rotated.name}”`, rotated);
      ctx.toast(`Key ${rotated.name} rotated.`);
    } catch (err) {
      ctx.toast("Rotate failed: " + errorText(err));
    }
  }

  async function revokeKey(k) {
    const ok = await confirmAction(`Revoke “${k.name}”?`, "The key stops working for good " +
      "(every worker refuses it within seconds). This cannot be undone.", "Revoke");
    if (!ok) return;
    try {
      replace(await api.post(`/admin/keys/${encodeURIComponent(k.id)}/revoke`));
      ctx.toast(`Key ${k.name} revoked.`);
    } catch (err) {
      ctx.toast("Revoke failed: " + errorText(err));
    }
  }

  // Model names for allowlists: the routing groups and auto routers (best effort).
  api.get("/admin/routing").then((report) => {
    models = [...(report.groups || []).map((g) => g.name),
              ...(report.auto_routers || []).map((r) => r.name)];
  }).catch(() => {});
  load();
  return null;
}

function showSecret(title, key) {
  return modal(title, (close) => {
    const secret = h("code", {id: "key-secret", class: "secret"}, key.key);
    const copy = () => {
      const fallback = () => {
        const range = document.createRange();
        range.selectNodeContents(secret);
        window.getSelection().removeAllRanges();
        window.getSelection().addRange(range);
      };
      if (navigator.clipboard) navigator.clipboard.writeText(key.key).catch(fallback);
      else fallback();
    };
    return h("div", {},
      h("p", {}, "This is the only time the key is shown: store it now. The gateway keeps " +
                 "only its hash."),
      h("p", {}, secret),
      h("div", {class: "actions"},
        h("button", {type: "button", onclick: copy}, "Copy"),
        h("button", {type: "button", class: "quiet", id: "secret-done",
                     onclick: () => close(true)}, "Done, I stored it")));
  });
}

/** The create / edit form; closes with the saved key (from the API). */
function keyForm(close, key, models, api) {
  const editing = key !== null;
  const initial = key || {role: "member", allowed_models: null};
  const known = [...new Set([...models, ...(initial.allowed_models || [])])];
  const every = h("input", {type: "checkbox", name: "every", id: "key-every-model",
                            checked: initial.allowed_models === null});
  const boxes = known.map((name) => h("input", {type: "checkbox", name: "model", value: name,
    checked: (initial.allowed_models || []).includes(name)}));
  const syncBoxes = () => boxes.forEach((box) => { box.disabled = every.checked; });
  every.addEventListener("change", syncBoxes);
  syncBoxes();
  const error = h("p", {class: "error", role: "alert"});
  const num = (name, value, attrs = {}) => h("input", {type: "number", name, min: attrs.min ?? 1,
    step: attrs.step ?? 1, inputmode: "decimal", value: value ?? ""});
  const form = h("form", {class: "key-form", novalidate: true},
    field("key-name", "Name", h("input", {name: "name", required: true, maxlength: 200,
                                          value: initial.name || "", autocomplete: "off"})),
    field("key-role", "Role", select("role", ROLES, initial.role)),
    h("fieldset", {},
      h("legend", {}, "Models"),
      h("label", {class: "check"}, every, " Every model (no allowlist)"),
      known.length ? h("div", {class: "checks"}, boxes.map((box, i) =>
        h("label", {class: "check"}, box, " ", known[i])))
        : h("small", {class: "hint"}, "No models are configured.")),
    h("div", {class: "row"},
      field("key-rpm", "Requests per minute", num("rpm_limit", initial.rpm_limit),
            "Empty: the gateway's default"),
      field("key-tpm", "Tokens per minute", num("tpm_limit", initial.tpm_limit),
            "Empty: the gateway's default")),
    h("div", {class: "row"},
      field("key-budget", "Budget (USD)", num("max_budget", initial.max_budget,
                                              {min: 0, step: 0.01}), "Empty: no budget"),
      field("key-period", "Budget period", select("budget_period", PERIODS,
                                                  initial.budget_period))),
    h("div", {class: "row"},
      field("key-expires", "Expires (UTC date)", h("input", {type: "date", name: "expires_at",
        value: initial.expires_at ? initial.expires_at.slice(0, 10) : ""}), "Empty: never"),
      field("key-team", "Team id", h("input", {name: "team_id", value: initial.team_id || "",
                                               autocomplete: "off"}))),
    field("key-user", "User id (owner)", h("input", {name: "user_id",
                                                     value: initial.user_id || "",
                                                     autocomplete: "off"})),
    editing ? h("label", {class: "check"}, h("input", {type: "checkbox", name: "disabled",
                                                       checked: initial.disabled}),
                " Disabled (refused until enabled again)") : null,
    error,
    h("div", {class: "actions"},
      h("button", {type: "submit"}, editing ? "Save" : "Create key"),
      h("button", {type: "button", class: "quiet", onclick: () => close(null)}, "Cancel")));

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const values = read(form, every, boxes);
    const body = editing ? changes(values, initial) : dropEmpty(values);
    if (editing && !Object.keys(body).length) {
      close(null);
      return;
    }
    form.querySelector("button[type=submit]").disabled = true;
    try {
      const saved = editing
        ? await api.patch(`/admin/keys/${encodeURIComponent(key.id)}`, body)
        : await api.post("/admin/keys", body);
      close(saved);
    } catch (err) {
      error.textContent = errorText(err);
      const input = err.param && form.elements.namedItem(err.param.split(/[.[]/)[0]);
      if (input && input.focus) {
        input.setAttribute("aria-invalid", "true");
        input.focus();
      }
    } finally {
      form.querySelector("button[type=submit]").disabled = false;
    }
  });
  return form;
}

function read(form, every, boxes) {
  const data = new FormData(form);
  const text = (name) => (data.get(name) || "").trim() || null;
  const number = (name, integer) => {
    const raw = text(name);
    if (raw === null) return null;
    return integer ? Number.parseInt(raw, 10) : Number.parseFloat(raw);
  };
  const expires = text("expires_at");
  return {
    name: text("name") || "",
    role: text("role"),
    allowed_models: every.checked ? null : boxes.filter((b) => b.checked).map((b) => b.value),
    rpm_limit: number("rpm_limit", true),
    tpm_limit: number("tpm_limit", true),
    max_budget: number("max_budget", false),
    budget_period: text("budget_period"),
    expires_at: expires ? `${expires}T00:00:00Z` : null,
    team_id: text("team_id"),
    user_id: text("user_id"),
    ...(form.elements.namedItem("disabled") ? {disabled: data.get("disabled") === "on"} : {}),
  };
}

function same(a, b) {
  if (Array.isArray(a) || Array.isArray(b)) {
    return JSON.stringify([...(a || [])].sort()) === JSON.stringify([...(b || [])].sort()) &&
      Array.isArray(a) === Array.isArray(b);
  }
  return (a ?? null) === (b ?? null);
}

/** Only the fields that changed (null clears one), for PATCH. */
function changes(values, initial) {
  const out = {};
  for (const [name, value] of Object.entries(values)) {
    let before = initial[name];
    if (name === "expires_at" && before) before = `${before.slice(0, 10)}T00:00:00Z`;
    if (!same(value, before)) out[name] = value;
  }
  return out;
}

function dropEmpty(values) {
  return Object.fromEntries(Object.entries(values).filter(([, v]) => v !== null));
}
