// The console's shell: the session, sign-in and sign-out, and a router over real URLs
// (/ui/keys, /ui/usage?start=...): a reload or a shared link shows the same page.

import {createApi, readSession, signIn, signOut} from "./api.js";
import {errorText, toast} from "./dom.js";
import * as audit from "./pages/audit.js";
import * as keys from "./pages/keys.js";
import * as routing from "./pages/routing.js";
import * as usage from "./pages/usage.js";

const PAGES = {keys, usage, routing, audit};
const root = document.body.dataset.root || "";
const base = root + "/ui";
const session = {csrfToken: null, keyId: null};
const api = createApi(root, session, showSignIn);
let cleanup = null;
let renders = 0;

const $ = (id) => document.getElementById(id);

function currentPage() {
  const rest = window.location.pathname.slice(base.length).replace(/^\/+|\/+$/g, "");
  return rest in PAGES ? rest : "keys";
}

/** Go to a page of the console; `params` (URLSearchParams or object) become its query. */
function navigate(page, params, {replace = false} = {}) {
  const query = new URLSearchParams(params || {}).toString();
  const url = `${base}/${page}${query ? "?" + query : ""}`;
  window.history[replace ? "replaceState" : "pushState"]({}, "", url);
  render(!replace);
}

function stop() {
  if (cleanup) cleanup();
  cleanup = null;
}

function render(moveFocus = false) {
  stop();
  const page = currentPage();
  for (const link of document.querySelectorAll("#nav a")) {
    if (link.dataset.page === page) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  const view = $("view");
  view.replaceChildren();
  renders += 1;
  document.body.dataset.renders = String(renders);
  const ctx = {
    api, toast, navigate: (params, opts) => navigate(page, params, opts),
    params: new URLSearchParams(window.location.search),
  };
  cleanup = PAGES[page].mount(view, ctx) || null;
  document.title = `${page[0].toUpperCase()}${page.slice(1)} · NeuroRoute console`;
  if (moveFocus) {
    const heading = view.querySelector("h1");
    if (heading) {
      heading.tabIndex = -1;
      heading.focus();
    }
  }
}

function showSignedIn(data) {
  session.csrfToken = data.csrf_token;
  session.keyId = data.key_id;
  $("sign-in").hidden = true;
  $("nav").hidden = false;
  $("who").hidden = false;
  $("who-key").textContent = `Signed in as ${data.key_id}`;
  render();
}

function showSignIn(reason) {
  stop();
  session.csrfToken = null;
  $("view").replaceChildren();
  $("nav").hidden = true;
  $("who").hidden = true;
  $("sign-in").hidden = false;
  $("sign-in-error").textContent = reason || "";
  document.title = "Sign in · NeuroRoute console";
}

async function onSignIn(event) {
  event.preventDefault();
  const input = $("sign-in-key");
  const key = input.value.trim();
  if (!key) {
    $("sign-in-error").textContent = "Enter an admin key.";
    input.focus();
    return;
  }
  const button = event.target.querySelector("button");
  button.disabled = true;
  try {
    const data = await signIn(root, key);
    input.value = ""; // the key is not kept anywhere: the cookie stands for it now
    $("sign-in-error").textContent = "";
    showSignedIn(data);
    const heading = $("view").querySelector("h1");
    if (heading) {
      heading.tabIndex = -1;
      heading.focus();
    }
  } catch (err) {
    $("sign-in-error").textContent = errorText(err);
    input.select();
    input.focus();
  } finally {
    button.disabled = false;
  }
}

async function onSignOut() {
  await signOut(root, session.csrfToken);
  showSignIn("Signed out.");
  $("sign-in-key").focus();
}

function onNavClick(event) {
  const link = event.target.closest("a[data-page]");
  if (!link || event.button !== 0 || event.metaKey || event.ctrlKey || event.shiftKey ||
      event.altKey) return;
  event.preventDefault();
  navigate(link.dataset.page);
}

async function boot() {
  $("sign-in-form").addEventListener("submit", onSignIn);
  $("sign-out").addEventListener("click", onSignOut);
  $("nav").addEventListener("click", onNavClick);
  window.addEventListener("popstate", () => {
    if (session.csrfToken) render(true);
  });
  const data = await readSession(root);
  if (data.signed_in) showSignedIn(data);
  else showSignIn(data.reason);
  document.body.dataset.ready = "true";
}

boot();
