"""What the embeddings and text-completions tests share: an app from models and routing
sections, a POST whose response is closed, and the usage rows it wrote."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from flask import Flask
from flask.testing import FlaskClient

from app import create_app
from app.settings import load_settings
from app.usage.writer import UsageRecord, UsageWriter
from tests.conftest import AUTH, MASTER_KEY
from tests.unit.test_usage import ListSink

UPSTREAM_A = "http://embed-a.test/v1"
UPSTREAM_B = "http://embed-b.test/v1"


def relayed_app(tmp_path: Path, database_url: str, models: list[dict[str, Any]],
                **sections: Any) -> Flask:
    """An app with these models and top-level YAML ``sections`` (groups, router_settings),
    writing its usage rows to a list (``app.usage_sink``)."""
    path = tmp_path / "relayed.yaml"
    path.write_text(yaml.safe_dump({"models": models, **sections}))
    app = create_app(load_settings({"NEUROROUTE_MASTER_KEY": MASTER_KEY,
                                    "NEUROROUTE_CONFIG": str(path),
                                    "NEUROROUTE_UPSTREAM_READ_TIMEOUT": "2",
                                    "NEUROROUTE_DATABASE_URL": database_url}))
    sink = ListSink()
    app.extensions["neuroroute"].chat.accounting.writer = UsageWriter(sink, batch_size=1000)
    app.config["usage_sink"] = sink
    return app


def post(client: FlaskClient, path: str, body: dict[str, Any],
         headers: dict[str, str] | None = None) -> Any:
    """POST as a server would: the response is read and closed (which accounts for it)."""
    with client.post(path, json=body, headers={**AUTH, **(headers or {})}) as resp:
        resp.get_data()
        return resp


def usage_rows(client: FlaskClient) -> list[UsageRecord]:
    app = client.application
    assert app.extensions["neuroroute"].usage_writer.write_pending()
    rows: list[UsageRecord] = app.config["usage_sink"].rows
    return rows
