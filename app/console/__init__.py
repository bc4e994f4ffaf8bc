"""The operator console at ``/ui``: a browser UI for admin keys over the admin API.

``views`` serves the page and its static files (``static/``: ES modules and CSS written by
hand, no build step, no third-party code); ``session`` signs an admin key in and out. The
script in the browser reads and changes everything through ``/admin/*``, which accepts the
session cookie (``app.auth.sessions``, checked in ``app.api.register_request_hooks``).
"""
