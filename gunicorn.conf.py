"""Gunicorn settings for NeuroRoute. Every setting that differs from Gunicorn's default says why.

Server-level knobs come from the environment (PORT, NEUROROUTE_BIND, NEUROROUTE_WORKERS, ...);
the application's own settings are read by ``app.settings`` only.
"""

import logging
import os
import shutil
import sys
import tempfile

# The master checks the configuration before forking, so a bad config file or a missing
# master key exits with one clear message and a non-zero status instead of a crash loop of
# workers. app.settings imports no HTTP client, so ssl is not imported before gevent patches.
from app.settings import ConfigError, load_settings

# Async workers: one process serves thousands of concurrent (mostly idle, streaming)
# connections, each in its own greenlet. `gevent` (the default) is Gunicorn's gevent worker
# as app.server.GatewayWorker extends it: idle keep-alive connections are closed at once on a
# stop or reload, and usage is written before the arbiter's kill.
# NEUROROUTE_WORKER_CLASS=gevent_pywsgi (or gevent_wsgi) picks Gunicorn's worker on gevent's
# own WSGI server instead (for A/B benchmarks only). Only gevent workers are supported.
_WORKERS = {"gevent": "app.server.GatewayWorker", "gevent_pywsgi": "gevent_pywsgi",
            "gevent_wsgi": "gevent_wsgi"}
_chosen = os.environ.get("NEUROROUTE_WORKER_CLASS") or "gevent"
if _chosen not in _WORKERS:
    raise SystemExit(f"NEUROROUTE_WORKER_CLASS: expected gevent, gevent_pywsgi or gevent_wsgi, "
                     f"got {_chosen!r}")
worker_class = _WORKERS[_chosen]

# Loopback by default: exposing the gateway is an explicit decision (NEUROROUTE_BIND).
bind = os.environ.get("NEUROROUTE_BIND") or f"127.0.0.1:{os.environ.get('PORT', '8000')}"

# One worker per core is the usual sizing for gevent workers (CPU-bound parsing, I/O-bound waits).
workers = int(os.environ.get("NEUROROUTE_WORKERS", "1"))

# Concurrent connections per worker (default 1000). Upstream pools are sized above this.
worker_connections = int(os.environ.get("NEUROROUTE_WORKER_CONNECTIONS", "2000"))

# Heartbeat timeout: gevent workers notify from their own greenlet, so long streams do not
# trip it; only a worker whose hub is blocked is restarted.
timeout = int(os.environ.get("NEUROROUTE_WORKER_TIMEOUT", "60"))

# Streams can last minutes: on SIGTERM/HUP in-flight requests get this long to finish.
graceful_timeout = int(os.environ.get("NEUROROUTE_GRACEFUL_TIMEOUT", "120"))

# Keep-alive with the client (nginx keeps upstream connections open; its default is 60 s).
keepalive = int(os.environ.get("NEUROROUTE_KEEPALIVE", "75"))

# Larger backlog than the default 2048 would not help on one core; keep the default.
# Access logs are written by the app itself (one JSON line per request, with model, tokens,
# TTFT); Gunicorn's own log lines use the same JSON format on stdout.
accesslog = None
loglevel = os.environ.get("NEUROROUTE_LOG_LEVEL", "info").lower()
logconfig_dict = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"json": {"()": "app.logs.JsonFormatter"}},
    "handlers": {"stdout": {"class": "logging.StreamHandler", "formatter": "json",
                            "stream": "ext://sys.stdout"}},
    "root": {"handlers": ["stdout"], "level": "WARNING"},
    "loggers": {
        "gunicorn.error": {"handlers": ["stdout"], "level": loglevel.upper(),
                           "propagate": False},
        # The app's own access line is richer (model, tokens, TTFT); one line per request is
        # enough, and every log call is on the hot path.
        "gunicorn.access": {"handlers": [], "level": "CRITICAL", "propagate": False},
    },
}
# Gunicorn's logger, except that it does not build the access-line atoms for the silenced
# gunicorn.access logger on every request (measured: ~4% of a request's CPU).
logger_class = "app.logs.GunicornLogger"

# Gunicorn's control socket (for `gunicornc`) defaults to one fixed path per user, which
# several instances on a host would fight over: opt in with a path of your own.
control_socket_disable = not os.environ.get("NEUROROUTE_CONTROL_SOCKET")
if os.environ.get("NEUROROUTE_CONTROL_SOCKET"):
    control_socket = os.environ["NEUROROUTE_CONTROL_SOCKET"]

# Prometheus multiprocess mode: every worker writes its metrics to files in this directory and
# /metrics on any worker sums them. It must be set before a worker imports prometheus_client,
# and must start empty, so the master creates a fresh one unless ops configured one.
_metrics_dir = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
if _metrics_dir:
    shutil.rmtree(_metrics_dir, ignore_errors=True)
    os.makedirs(_metrics_dir, exist_ok=True)
else:
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="neuroroute-metrics-")


def on_starting(server):  # noqa: ARG001 - Gunicorn hook signature
    try:
        load_settings()
    except ConfigError as exc:
        print(f"neuroroute: configuration error: {exc}", file=sys.stderr, flush=True)
        sys.exit(1)


def child_exit(server, worker):  # noqa: ARG001 - Gunicorn hook signature
    # Drop the live gauges (in-flight requests/streams) of a worker that is gone.
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


def post_fork(server, worker):
    # No "Server: gunicorn" header, and Gunicorn's own refusals (414, 431...) as OpenAI's JSON
    # envelope instead of HTML (app/gunicorn_http.py).
    from app.gunicorn_http import install

    install()
    # psycopg2 is a C driver: without a wait callback every query would block the whole
    # worker's hub. The callback must be installed before the worker's first connection,
    # which happens while the app is loaded (right after this hook). Checked on the worker
    # actually used, in case `-k` overrode worker_class on the command line.
    from gunicorn.workers.ggevent import GeventWorker

    if isinstance(worker, GeventWorker):
        from psycogreen.gevent import patch_psycopg

        patch_psycopg()
        # gevent's sendall makes a getsockopt() syscall per call (i.e. per SSE event written);
        # see app/gevent_sendall.py. NEUROROUTE_GEVENT_FAST_SENDALL=false keeps gevent's own.
        if os.environ.get("NEUROROUTE_GEVENT_FAST_SENDALL", "true").lower() not in (
                "0", "false", "no", "off"):
            from app.gevent_sendall import patch_gevent_sendall

            patch_gevent_sendall()


def post_worker_init(worker):
    # A worker never serves on a schema it was not written for (e.g. a new release started
    # during a rolling upgrade before `make migrate` ran): it exits with Gunicorn's boot-error
    # status, so the arbiter stops with this message instead of serving wrong results.
    # A database that cannot be reached at all is different: refusing would turn a short
    # outage during a worker respawn into a full stop (a boot error halts the arbiter), so the
    # worker starts degraded (master key, YAML models) and syncs when the database is back.
    from app.db.schema import DatabaseUnreachableError, SchemaNotCurrentError, require_head
    from app.gateway import EXTENSION_KEY

    try:
        require_head(worker.wsgi.extensions[EXTENSION_KEY].db.engine)
    except DatabaseUnreachableError as exc:
        worker.log.warning("neuroroute: starting degraded: %s", exc)
    except SchemaNotCurrentError as exc:
        worker.log.error("neuroroute: refusing to start this worker: %s", exc)
        from gunicorn.arbiter import Arbiter

        sys.exit(Arbiter.WORKER_BOOT_ERROR)


def worker_exit(server, worker):  # noqa: ARG001 - Gunicorn hook signature
    # "Last used" times are batched in memory; write what is pending before the worker goes.
    app = getattr(worker, "wsgi", None)
    if app is None or not hasattr(app, "extensions"):  # the worker never loaded the app
        return
    from app.gateway import EXTENSION_KEY

    gw = app.extensions.get(EXTENSION_KEY)
    if gw is not None:
        gw.admission.settler.drain()  # the quota corrections of its last requests
        gw.sync.flush_last_used()
        # Usage records of the requests this worker served (in-flight ones have finished by
        # now: SIGTERM/HUP let them complete within graceful_timeout) are written before exit.
        if gw.usage_writer is not None:
            gw.usage_writer.stop(timeout=10.0)
        gw.recorder.stop()  # the batched metric updates of its last second
    for handler in logging.getLogger("app").handlers:
        handler.flush()  # the app's log lines are written in batches
