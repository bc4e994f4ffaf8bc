"""Operator commands through Flask's CLI: ``flask --app wsgi db|keys|users|responses ...``.

They use the same repository functions as the admin API, so every change is audited (actor
``cli``) and reaches the running workers through the sync counters.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import click
from flask import Flask
from flask.cli import AppGroup

from app.db import repo, schema
from app.errors import GatewayError
from app.gateway import gateway

CLI_ACTOR = "cli"

db_cli = AppGroup("db", help="Database migrations.")
keys_cli = AppGroup("keys", help="Client API keys.")
users_cli = AppGroup("users", help="Users.")
responses_cli = AppGroup("responses", help="Stored Responses API answers.")


def register_cli(app: Flask) -> None:
    """Add the ``db``, ``keys``, ``users`` and ``responses`` command groups to ``app``."""
    for group in (db_cli, keys_cli, users_cli, responses_cli):
        app.cli.add_command(group)


def _fail(err: GatewayError) -> None:
    raise click.ClickException(f"{err.message} ({err.code})")


@db_cli.command("upgrade")
@click.option("--revision", default="head", show_default=True)
def db_upgrade(revision: str) -> None:
    """Apply migrations (idempotent: nothing happens when already at the revision)."""
    schema.upgrade(gateway().settings.database_url, revision)
    click.echo(f"database at revision {schema.current_revision(gateway().db.engine)}")


@db_cli.command("downgrade")
@click.argument("revision")
def db_downgrade(revision: str) -> None:
    """Revert migrations down to REVISION ("base" empties the database)."""
    schema.downgrade(gateway().settings.database_url, revision)
    click.echo(f"database at revision {schema.current_revision(gateway().db.engine)}")


@db_cli.command("current")
def db_current() -> None:
    """Show the database's revision and the release's head revision."""
    current = schema.current_revision(gateway().db.engine)
    click.echo(f"current: {current or '(empty)'}  head: {schema.head_revision()}")


@keys_cli.command("create")
@click.option("--name", required=True, help="A label for the key.")
@click.option("--role", type=click.Choice(["admin", "member"]), default="member",
              show_default=True)
@click.option("--user-id", default=None, help="Owner user id.")
@click.option("--team-id", default=None)
@click.option("--models", default=None,
              help="Comma-separated model names the key may use (default: all).")
@click.option("--expires-in-days", type=click.IntRange(min=1), default=None)
def keys_create(name: str, role: str, user_id: str | None, team_id: str | None,
                models: str | None, expires_in_days: int | None) -> None:
    """Create a key and print it once (it is stored only as a hash)."""
    fields: dict[str, Any] = {"name": name, "role": role, "user_id": user_id,
                              "team_id": team_id}
    if models is not None:
        fields["allowed_models"] = [m.strip() for m in models.split(",") if m.strip()]
    if expires_in_days is not None:
        fields["expires_at"] = datetime.now(UTC) + timedelta(days=expires_in_days)
    try:
        with gateway().db.session() as session:
            key, plaintext = repo.create_key(session, actor=CLI_ACTOR, fields=fields)
            key_id = key.id
    except GatewayError as err:
        _fail(err)
        return
    gateway().sync.changed()
    click.echo(f"id:  {key_id}")
    click.echo(f"key: {plaintext}")
    click.echo("Store the key now: it cannot be shown again.", err=True)


@keys_cli.command("list")
@click.option("--status", type=click.Choice(["active", "revoked", "disabled", "expired"]))
@click.option("--limit", type=click.IntRange(1, 1000), default=100, show_default=True)
def keys_list(status: str | None, limit: int) -> None:
    """List keys (id, visible prefix, role, status, name); never the keys themselves."""
    with gateway().db.session() as session:
        page = repo.list_keys(session, limit=limit, status=status)
        for key in page.items:
            click.echo(f"{key.id}  {key.prefix}…  {key.role:<6}  "
                       f"{key.status:<8}  {key.name}")


@keys_cli.command("revoke")
@click.argument("key_id")
def keys_revoke(key_id: str) -> None:
    """Revoke a key; every worker refuses it within NEUROROUTE_SYNC_INTERVAL seconds."""
    try:
        with gateway().db.session() as session:
            repo.revoke_key(session, key_id, actor=CLI_ACTOR)
    except GatewayError as err:
        _fail(err)
        return
    gateway().sync.changed()  # with Redis, the running workers drop the key at once
    click.echo(f"revoked {key_id}")


@users_cli.command("create")
@click.option("--email", required=True)
@click.option("--name", default=None)
@click.option("--role", type=click.Choice(["admin", "member"]), default="member",
              show_default=True)
@click.option("--team-id", default=None)
def users_create(email: str, name: str | None, role: str, team_id: str | None) -> None:
    """Create a user (keys can then be created for it with --user-id)."""
    try:
        with gateway().db.session() as session:
            user = repo.create_user(session, actor=CLI_ACTOR, fields={
                "email": email, "name": name, "role": role, "team_id": team_id})
            user_id = user.id
    except GatewayError as err:
        _fail(err)
        return
    click.echo(f"id: {user_id}")


@responses_cli.command("purge")
def responses_purge() -> None:
    """Delete stored responses past NEUROROUTE_RESPONSES_RETENTION_DAYS (e.g. from cron)."""
    store = gateway().responses.store
    if not store.retention_days:
        click.echo("NEUROROUTE_RESPONSES_RETENTION_DAYS is 0: responses are kept for ever")
        return
    deleted = store.purge()
    click.echo(f"deleted {deleted} responses inactive for more than "
               f"{store.retention_days} days")
