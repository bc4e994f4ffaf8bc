"""The console's page and static files: one HTML shell for every page, ES modules, CSS.

The pages are drawn in the browser from the admin API's answers (the script calls
``/admin/*`` with the session cookie), so this module serves files only: no data, no second
path to the database. Every file comes from the gateway (offline; no CDN, no build step),
under a CSP that allows this origin's scripts, styles and ``fetch`` and nothing else.
"""

from __future__ import annotations

import flask
from flask import Response, render_template, url_for

from app.http_headers import CONSOLE_CSP

PAGES = ("keys", "usage", "routing", "audit")
bp = flask.Blueprint("console", __name__, url_prefix="/ui", static_folder="static",
                     static_url_path="/static", template_folder="templates")


@bp.get("")
@bp.get("/")
@bp.get(f"/<any({', '.join(PAGES)}):page>")
def page(page: str = PAGES[0]) -> str:
    """The console shell; the script draws ``page`` (deep links and reloads land here)."""
    return render_template("console/index.html", page=page, pages=PAGES,
                           root=flask.request.script_root,
                           static=lambda name: url_for("console.static", filename=name))


@bp.after_request
def _headers(response: Response) -> Response:
    response.headers["Content-Security-Policy"] = CONSOLE_CSP
    # Files change with a release and there is no build step to fingerprint them: the
    # browser revalidates (ETag / Last-Modified) instead of caching blindly.
    response.headers.setdefault("Cache-Control", "no-cache")
    response.headers["X-Frame-Options"] = "DENY"  # with frame-ancestors, for old browsers
    return response
