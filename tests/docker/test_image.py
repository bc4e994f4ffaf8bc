"""The image and the deployment as compose runs them: migrations, files, user, stop timing."""

from __future__ import annotations

from datetime import datetime

from app.db.schema import head_revision
from tests.docker.stack import MASTER_KEY, Stack, docker


def _when(stamp: str) -> datetime:
    """Docker's RFC 3339 time with nanoseconds, to the microsecond."""
    head, _, frac = stamp.rstrip("Z").partition(".")
    return datetime.fromisoformat(f"{head}.{(frac or '0')[:6].ljust(6, '0')}+00:00")


def test_migrate_runs_once_and_the_gateways_start_after_it(stack: Stack) -> None:
    (migrate,) = stack.containers("migrate")
    state = stack.inspect(migrate)["State"]
    assert (state["Status"], state["ExitCode"]) == ("exited", 0)
    assert f"database at revision {head_revision()}" in docker("logs", migrate)
    assert stack.psql("SELECT version_num FROM alembic_version") == [[head_revision()]]

    gateways = stack.containers("gateway")
    assert len(gateways) == 2, "the compose file runs two gateway replicas"
    for gateway in gateways:
        started = stack.inspect(gateway)["State"]
        assert started["Health"]["Status"] == "healthy"
        assert _when(started["StartedAt"]) >= _when(state["FinishedAt"])
        assert "refusing to start" not in docker("logs", gateway)


def test_image_holds_the_installed_package_only_and_runs_as_non_root(stack: Stack) -> None:
    gateway = stack.containers("gateway")[0]
    assert stack.exec(gateway, "id", "-u").strip() == "10001"
    # Installed once, in the venv's site-packages; no source tree beside the entry points.
    location = stack.exec(gateway, "python", "-c", "import app; print(app.__file__)").strip()
    assert location.startswith("/opt/neuroroute/lib/") and "/site-packages/app/" in location
    listing = set(stack.exec(gateway, "ls", "-A", "/srv/neuroroute").split())
    assert listing == {"config", "data", "gunicorn.conf.py", "wsgi.py"}
    # Install-time tools stay in the build stage.
    assert stack.exec(gateway, "ls", "/opt/neuroroute/bin").split().count("pip") == 0


def test_sqlite_fallback_is_writable_by_the_gateway_user(stack: Stack) -> None:
    """Without a database URL the image migrates and uses SQLite in its data folder."""
    out = docker("run", "--rm", "-e", f"NEUROROUTE_MASTER_KEY={MASTER_KEY}",
                 stack.env["NEUROROUTE_IMAGE"], "sh", "-c",
                 "flask --app wsgi db upgrade && ls -l data", timeout=120)
    assert f"database at revision {head_revision()}" in out
    assert "neuroroute.db" in out and " neuroroute neuroroute " in out


def test_stop_grace_period_outlasts_the_graceful_timeout(stack: Stack) -> None:
    """Docker waits out Gunicorn's whole graceful stop (drain and usage flush) before it kills."""
    for gateway in stack.containers("gateway"):
        config = stack.inspect(gateway)["Config"]
        env = dict(item.split("=", 1) for item in config["Env"])
        graceful = int(env["NEUROROUTE_GRACEFUL_TIMEOUT"])
        assert graceful == 120  # the documented default reaches the container
        assert config["StopTimeout"] >= graceful + 15
