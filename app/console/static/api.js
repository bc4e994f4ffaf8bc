// The admin API, called with the session cookie (same origin; the browser sends it). Every
// change carries the session's CSRF token in X-CSRF-Token: the gateway refuses it without.

export class ApiError extends Error {
  constructor(status, error) {
    super((error && error.message) || `HTTP ${status}`);
    this.status = status;
    this.code = error ? error.code : null;
    this.param = error ? error.param : null;
  }
}

export function createApi(root, session, onSignedOut) {
  async function call(method, path, {query, body} = {}) {
    const url = new URL(root + path, window.location.origin);
    for (const [name, value] of Object.entries(query || {})) {
      if (value !== undefined && value !== null && value !== "") url.searchParams.set(name, value);
    }
    const headers = {Accept: "application/json"};
    if (body !== undefined) headers["Content-Type"] = "application/json";
    if (method !== "GET") headers["X-CSRF-Token"] = session.csrfToken;
    const resp = await fetch(url, {
      method, headers, credentials: "same-origin", cache: "no-store",
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    if (resp.status === 204) return null;
    let data = null;
    try {
      data = await resp.json();
    } catch {
      data = null;
    }
    if (!resp.ok) {
      const err = new ApiError(resp.status, data && data.error);
      if (resp.status === 401) onSignedOut(err.message);
      throw err;
    }
    return data;
  }
  return {
    get: (path, query) => call("GET", path, {query}),
    post: (path, body) => call("POST", path, {body}),
    patch: (path, body) => call("PATCH", path, {body}),
  };
}

/** GET /ui/session: {signed_in, key_id, role, csrf_token, expires_at, reason}. */
export async function readSession(root) {
  const resp = await fetch(root + "/ui/session", {credentials: "same-origin", cache: "no-store",
                                                  headers: {Accept: "application/json"}});
  return resp.json();
}

/** POST /ui/session with the key as a bearer token; the answer sets the cookie. */
export async function signIn(root, key) {
  const resp = await fetch(root + "/ui/session", {
    method: "POST", credentials: "same-origin", cache: "no-store",
    headers: {Accept: "application/json", Authorization: "Bearer " + key},
  });
  const data = await resp.json().catch(() => null);
  if (!resp.ok) throw new ApiError(resp.status, data && data.error);
  return data;
}

export async function signOut(root, csrfToken) {
  await fetch(root + "/ui/session", {method: "DELETE", credentials: "same-origin",
                                     headers: {"X-CSRF-Token": csrfToken || ""}});
}
