"""Fixtures shared by every test: settings written to a temp YAML file, the app, its client."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import responses
import yaml
from flask import Flask
from flask.testing import FlaskClient
from hypothesis import HealthCheck
from hypothesis import settings as hypothesis_settings

from app import create_app
from app.db.schema import upgrade
from app.settings import Settings, load_settings

# The providers' sessions mount app.providers.transport.LeanAdapter, whose send() replaces
# HTTPAdapter.send for the gateway's own calls: `responses` mocks that method instead.
responses._default_mock.target = "app.providers.transport.LeanAdapter.send"

MASTER_KEY = "sk-test-master-key"
AUTH = {"Authorization": f"Bearer {MASTER_KEY}"}
UPSTREAM = "http://upstream.test/v1"

DEFAULT_MODELS: list[dict[str, Any]] = [
    {"name": "mock-fast", "provider": "mock", "model": "mock-fast",
     "mock": {"tokens": 5}},
    {"name": "gpt-test", "provider": "openai", "model": "gpt-test-upstream",
     "api_base": UPSTREAM, "api_key": "sk-upstream-secret"},
]

SettingsFactory = Callable[..., Settings]

# Property-based tests: bounded so the suite stays fast; `--hypothesis-profile=thorough` digs
# deeper. In CI the examples are derived from the test (derandomize), so a run is repeatable.
# The app fixtures are per test, not per example: the properties hold for a used app too.
hypothesis_settings.register_profile(
    "neuroroute", max_examples=60, deadline=None, database=None,
    derandomize=os.environ.get("CI", "").lower() == "true",
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                           HealthCheck.data_too_large])
hypothesis_settings.register_profile("thorough", parent=hypothesis_settings.get_profile(
    "neuroroute"), max_examples=1000)
hypothesis_settings.load_profile("neuroroute")


@pytest.fixture(scope="session")
def migrated_sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite file at the migrations' head, built once; tests get their own copy."""
    path = tmp_path_factory.mktemp("db-template") / "template.db"
    upgrade(f"sqlite:///{path}")
    return path


@pytest.fixture
def database_url(tmp_path: Path, migrated_sqlite_template: Path) -> str:
    """A fresh, migrated SQLite database for this test only."""
    path = tmp_path / "neuroroute.db"
    shutil.copyfile(migrated_sqlite_template, path)
    return f"sqlite:///{path}"


@pytest.fixture
def make_settings(tmp_path: Path, database_url: str) -> SettingsFactory:
    """Build Settings the way production does: a YAML file plus NEUROROUTE_* variables."""

    def factory(models: list[dict[str, Any]] | None = None, **env: str) -> Settings:
        path = tmp_path / "neuroroute.yaml"
        path.write_text(yaml.safe_dump({"models": models or DEFAULT_MODELS}))
        full_env = {"NEUROROUTE_MASTER_KEY": MASTER_KEY, "NEUROROUTE_CONFIG": str(path),
                    "NEUROROUTE_UPSTREAM_READ_TIMEOUT": "2",
                    "NEUROROUTE_DATABASE_URL": database_url, **env}
        return load_settings(full_env)

    return factory


@pytest.fixture
def settings(make_settings: SettingsFactory) -> Settings:
    return make_settings()


@pytest.fixture
def app(settings: Settings) -> Flask:
    app = create_app(settings)
    app.config["TESTING"] = True
    return app


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


def chat_body(model: str = "mock-fast", **extra: Any) -> dict[str, Any]:
    return {"model": model, "messages": [{"role": "user", "content": "Hello there"}], **extra}
