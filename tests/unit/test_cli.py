"""``flask --app wsgi db|keys|users``: through Flask's CLI runner on the test app."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from flask import Flask
from flask.testing import FlaskClient

from app.db.schema import head_revision
from app.gateway import EXTENSION_KEY


def test_keys_create_list_revoke(app: Flask, client: FlaskClient) -> None:
    runner = app.test_cli_runner()
    result = runner.invoke(args=["keys", "create", "--name", "ops", "--role", "admin",
                                 "--models", "mock-fast, gpt-test"])
    assert result.exit_code == 0, result.output
    key = re.search(r"key: (sk-nr-\S+)", result.output)
    key_id = re.search(r"id:\s+(key_\w+)", result.output)
    assert key and key_id
    auth = {"Authorization": f"Bearer {key.group(1)}"}
    assert client.get("/admin/keys", headers=auth).status_code == 200  # an admin key
    models = client.get("/v1/models", headers=auth).get_json()["data"]
    assert sorted(m["id"] for m in models) == ["gpt-test", "mock-fast"]

    listed = runner.invoke(args=["keys", "list"])
    assert key_id.group(1) in listed.output and "active" in listed.output
    assert key.group(1) not in listed.output  # only the visible prefix

    revoked = runner.invoke(args=["keys", "revoke", key_id.group(1)])
    assert revoked.exit_code == 0
    assert "revoked" in runner.invoke(args=["keys", "list", "--status", "revoked"]).output
    # The CLI is another process: the serving app sees the change at its next sync.
    app.extensions[EXTENSION_KEY].sync.refresh()
    assert client.get("/v1/models", headers=auth).status_code == 401
    audit = client.get("/admin/audit", headers={"Authorization": "Bearer sk-test-master-key"})
    assert {e["actor"] for e in audit.get_json()["data"]} == {"cli"}


def test_users_create_and_key_for_user(app: Flask) -> None:
    runner = app.test_cli_runner()
    made = runner.invoke(args=["users", "create", "--email", "ada@example.com"])
    assert made.exit_code == 0
    user_id = made.output.split("id:")[1].strip()
    ok = runner.invoke(args=["keys", "create", "--name", "ada", "--user-id", user_id,
                             "--expires-in-days", "30"])
    assert ok.exit_code == 0
    dup = runner.invoke(args=["users", "create", "--email", "ada@example.com"])
    assert dup.exit_code != 0 and "exists" in dup.output


def test_errors_are_messages_not_tracebacks(app: Flask) -> None:
    runner = app.test_cli_runner()
    result = runner.invoke(args=["keys", "revoke", "key_nope"])
    assert result.exit_code == 1 and "No api_key with id 'key_nope'" in result.output
    result = runner.invoke(args=["keys", "create", "--name", "x", "--user-id", "usr_nope"])
    assert result.exit_code == 1 and "user_id" in result.output


def test_db_current_and_upgrade(app: Flask) -> None:
    runner = app.test_cli_runner()
    assert f"current: {head_revision()}" in runner.invoke(args=["db", "current"]).output
    assert "revision" in runner.invoke(args=["db", "upgrade"]).output


def test_without_master_key_one_clear_line_and_a_failure() -> None:
    """The README's CLI lines, run as a new user would without NEUROROUTE_MASTER_KEY."""
    root = Path(__file__).resolve().parents[2]
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEUROROUTE_")}
    flask = Path(sys.executable).with_name("flask")
    result = subprocess.run([str(flask), "--app", "wsgi", "keys", "create", "--name", "x"],
                            cwd=root, env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("neuroroute: configuration error: NEUROROUTE_MASTER_KEY")
