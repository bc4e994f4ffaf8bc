"""Gunicorn entry point: ``gunicorn -c gunicorn.conf.py wsgi:app``.

The gevent worker monkey-patches the standard library before it imports this module, so
sockets and ssl used by ``requests`` are cooperative by the time the app is built.
"""

from app import create_app

app = create_app()
