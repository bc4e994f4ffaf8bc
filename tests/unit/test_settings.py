from pathlib import Path

import pytest
import yaml

from app.settings import DEFAULT_CONFIG_PATH, DEFAULT_DATA_DIR, ConfigError, load_settings


def write(tmp_path: Path, data: object) -> Path:
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump(data) if not isinstance(data, str) else data)
    return path


def env_for(path: Path, **extra: str) -> dict[str, str]:
    return {"NEUROROUTE_MASTER_KEY": "sk-test-master", "NEUROROUTE_CONFIG": str(path), **extra}


def test_shipped_default_config_loads() -> None:
    settings = load_settings({"NEUROROUTE_MASTER_KEY": "sk-test-master"})
    assert settings.config_path == DEFAULT_CONFIG_PATH
    assert {d.provider for d in settings.deployments} == {"mock"}


def test_api_key_read_from_environment_and_redacted(tmp_path: Path) -> None:
    path = write(tmp_path, {"models": [{"name": "g", "provider": "openai", "model": "m",
                                        "api_base": "http://127.0.0.1:9/v1/",
                                        "api_key": "os.environ/UP_KEY"}]})
    settings = load_settings(env_for(path, UP_KEY="sk-secret-value"))
    dep = settings.deployments[0]
    assert dep.api_key == "sk-secret-value"
    assert dep.api_base == "http://127.0.0.1:9/v1"
    public = str(settings.public_dict())
    assert "sk-secret-value" not in public and "sk-test-master" not in public
    assert "os.environ/UP_KEY" in public
    assert "sk-secret-value" not in repr(settings)


@pytest.mark.parametrize(("data", "expected"), [
    ({"models": [{"name": "x", "provider": "nope", "model": "m"}]},
     "models[0].provider: Must be one of"),
    ({"models": [{"name": "x", "model": "m", "provider": "mock"}, {"name": "y"}]},
     "models[1].provider: Missing data"),
    ({"models": [{"name": "x", "provider": "mock", "model": "m", "typo": 1}]},
     "models[0].typo: Unknown field"),
    ({"models": [{"name": "x", "provider": "openai", "model": "m"}]},
     "models[0].api_base: required for provider 'openai'"),
    ({"models": [{"name": "x", "provider": "openai", "model": "m", "api_base": "ftp://h"}]},
     "models[0].api_base: Not a valid URL"),
    ({"models": [{"name": "x", "provider": "openai", "model": "m", "api_base": "http://h/v1",
                  "api_key": "os.environ/MISSING_VAR"}]},
     "models[0].api_key: environment variable MISSING_VAR is not set"),
    ({"models": [{"name": "x", "provider": "mock", "model": "m", "mock": {"tokens": 0}}]},
     "models[0].mock.tokens"),
    ({"models": []}, "models: Shorter than minimum length 1"),
    ("models: [unclosed", "invalid YAML"),
    ("- just a list", "must be a mapping"),
])
def test_config_errors_name_file_field_and_problem(tmp_path: Path, data: object,
                                                   expected: str) -> None:
    path = write(tmp_path, data)
    with pytest.raises(ConfigError) as info:
        load_settings(env_for(path))
    assert str(path) in str(info.value)
    assert expected in str(info.value)


def test_missing_config_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read the config file"):
        load_settings(env_for(tmp_path / "absent.yaml"))


@pytest.mark.parametrize(("env", "expected"), [
    ({"NEUROROUTE_MASTER_KEY": ""}, "NEUROROUTE_MASTER_KEY: not set"),
    ({"NEUROROUTE_MASTER_KEY": "short"}, "at least 8"),
    ({"NEUROROUTE_MAX_BODY_BYTES": "lots"}, "NEUROROUTE_MAX_BODY_BYTES: expected int"),
    ({"NEUROROUTE_MAX_BODY_BYTES": str(64 * 1024 * 1024)}, "at most"),
    ({"NEUROROUTE_UPSTREAM_READ_TIMEOUT": "-1"}, "greater than 0"),
    ({"NEUROROUTE_UPSTREAM_TRUST_ENV": "maybe"}, "expected true or false"),
    ({"NEUROROUTE_LOG_LEVEL": "chatty"}, "unknown level"),
])
def test_environment_errors(env: dict[str, str], expected: str) -> None:
    with pytest.raises(ConfigError, match=expected):
        load_settings({"NEUROROUTE_MASTER_KEY": "sk-test-master", **env})


def test_deployment_ids_are_unique_and_stable(tmp_path: Path) -> None:
    path = write(tmp_path, {"models": [
        {"name": "g", "provider": "mock", "model": "a"},
        {"name": "g", "provider": "mock", "model": "b", "weight": 3},
        {"name": "h", "provider": "mock", "model": "c", "id": "h-primary"}]})
    ids = [d.id for d in load_settings(env_for(path)).deployments]
    assert ids == ["g#0", "g#1", "h-primary"]


def test_database_defaults_to_sqlite_under_data(tmp_path: Path) -> None:
    settings = load_settings(env_for(write(tmp_path, {"models": [
        {"name": "x", "provider": "mock", "model": "m"}]})))
    assert settings.database_url == f"sqlite:///{DEFAULT_DATA_DIR / 'neuroroute.db'}"
    assert settings.db_pool_size == 10 and settings.sync_interval == 2.0


def test_database_url_password_is_redacted(tmp_path: Path) -> None:
    path = write(tmp_path, {"models": [{"name": "x", "provider": "mock", "model": "m"}]})
    settings = load_settings(env_for(
        path, NEUROROUTE_DATABASE_URL="postgresql+psycopg2://nr:pg-secret@db:5432/nr",
        NEUROROUTE_DB_POOL_SIZE="3", NEUROROUTE_DB_MAX_OVERFLOW="0",
        NEUROROUTE_SYNC_INTERVAL="0.5"))
    assert settings.db_pool_size == 3 and settings.db_max_overflow == 0
    assert settings.sync_interval == 0.5
    public = settings.public_dict()
    assert public["database_url"] == "postgresql+psycopg2://nr:***@db:5432/nr"
    assert "pg-secret" not in str(public) and "pg-secret" not in repr(settings)


@pytest.mark.parametrize(("name", "value", "expected"), [
    ("NEUROROUTE_DATABASE_URL", "not a url", "not a valid database URL"),
    ("NEUROROUTE_DATABASE_URL", "mysql://h/db", "only sqlite and postgresql"),
    ("NEUROROUTE_DB_POOL_SIZE", "0", "must be greater than 0"),
    ("NEUROROUTE_DB_MAX_OVERFLOW", "x", "expected int"),
    ("NEUROROUTE_DB_MAX_OVERFLOW", "-1", "greater than or equal to 0"),
    ("NEUROROUTE_SYNC_INTERVAL", "-1", "must be greater than 0"),
    ("NEUROROUTE_KEY_CACHE_TTL", "abc", "expected float"),
])
def test_database_settings_errors_name_the_variable(tmp_path: Path, name: str, value: str,
                                                    expected: str) -> None:
    path = write(tmp_path, {"models": [{"name": "x", "provider": "mock", "model": "m"}]})
    with pytest.raises(ConfigError, match=expected) as info:
        load_settings(env_for(path, **{name: value}))
    assert str(info.value).startswith(name)
    assert "pg-secret" not in str(info.value)


def test_redis_url_is_optional_validated_and_redacted(tmp_path: Path) -> None:
    path = write(tmp_path, {"models": [{"name": "x", "provider": "mock", "model": "m"}]})
    assert load_settings(env_for(path)).redis_url is None
    settings = load_settings(env_for(path, NEUROROUTE_REDIS_URL="redis://:r-secret@h:6379/2"))
    assert settings.redis_url == "redis://:r-secret@h:6379/2"
    assert "r-secret" not in str(settings.public_dict()) and "r-secret" not in repr(settings)
    with pytest.raises(ConfigError, match="^NEUROROUTE_REDIS_URL"):
        load_settings(env_for(path, NEUROROUTE_REDIS_URL="http://h:6379"))
