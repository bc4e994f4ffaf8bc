"""Gunicorn entry point: ``gunicorn -c gunicorn.conf.py wsgi:app`` (and ``flask --app wsgi``).

The gevent worker monkey-patches the standard library before it imports this module, so
sockets and ssl used by ``requests`` are cooperative by the time the app is built.
"""

from app import create_app
from app.settings import ConfigError

try:
    app = create_app()
except ConfigError as exc:
    # One line naming the variable or file (e.g. for `flask --app wsgi keys create` without
    # NEUROROUTE_MASTER_KEY), exit status 1, instead of an import traceback.
    raise SystemExit(f"neuroroute: configuration error: {exc}") from None
