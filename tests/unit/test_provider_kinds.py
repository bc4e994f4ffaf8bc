"""Azure's URL layout and key header, local-server presets, and config rules of the new fields."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import responses
import yaml
from flask.testing import FlaskClient

from app import create_app
from app.providers.anthropic import AnthropicProvider
from app.providers.azure import AzureOpenAIProvider
from app.providers.base import build_provider
from app.providers.openai import OpenAIProvider
from app.settings import ConfigError, load_settings
from tests.conftest import AUTH, SettingsFactory, chat_body
from tests.openai_spec import assert_valid
from tests.unit.test_openai_provider import COMPLETION

AZURE_BASE = "https://my-resource.openai.azure.test"


@responses.activate
def test_azure_url_layout_and_api_key_header(make_settings: SettingsFactory) -> None:
    settings = make_settings([
        {"name": "gpt-azure", "provider": "azure", "model": "gpt-4o-prod",
         "api_base": AZURE_BASE + "/", "api_key": "azure-secret", "api_version": "2024-10-21"},
    ])
    url = f"{AZURE_BASE}/openai/deployments/gpt-4o-prod/chat/completions?api-version=2024-10-21"
    responses.post(url, json=COMPLETION)
    client = create_app(settings).test_client()
    for stream in (False, True):
        if stream:
            responses.replace(responses.POST, url, body=b"data: [DONE]\n\n",
                              content_type="text/event-stream")
        resp = client.post("/v1/chat/completions", json=chat_body("gpt-azure", stream=stream),
                           headers=AUTH)
        assert resp.status_code == 200
    for call in responses.calls:
        assert call.request.url == url
        assert call.request.headers["api-key"] == "azure-secret"
        assert "Authorization" not in call.request.headers
    provider = build_provider(settings.deployments[0], settings=settings)
    assert isinstance(provider, AzureOpenAIProvider)


@pytest.mark.parametrize(("kind", "base"), [
    ("lmstudio", "http://127.0.0.1:1234/v1"),
    ("vllm", "http://127.0.0.1:8000/v1"),
    ("ollama", "http://127.0.0.1:11434/v1"),
])
@responses.activate
def test_local_presets_work_from_one_line(make_settings: SettingsFactory, kind: str,
                                          base: str) -> None:
    settings = make_settings([{"name": "local", "provider": kind, "model": "llama3.2"}])
    dep = settings.deployments[0]
    assert (dep.api_base, dep.api_key) == (base, None)
    responses.post(f"{base}/chat/completions", json=COMPLETION)
    client: FlaskClient = create_app(settings).test_client()
    resp = client.post("/v1/chat/completions", json=chat_body("local"), headers=AUTH)
    assert resp.status_code == 200
    assert_valid(resp.get_json(), "CreateChatCompletionResponse")
    sent = responses.calls[0].request
    assert "Authorization" not in sent.headers
    assert isinstance(build_provider(dep, settings=settings), OpenAIProvider)
    assert client.get("/v1/models", headers=AUTH).get_json()["data"][0]["owned_by"] == kind


def test_preset_api_base_can_be_overridden(make_settings: SettingsFactory) -> None:
    settings = make_settings([{"name": "l", "provider": "ollama", "model": "m",
                               "api_base": "http://10.0.0.5:11434/v1"}])
    assert settings.deployments[0].api_base == "http://10.0.0.5:11434/v1"


def test_anthropic_defaults(make_settings: SettingsFactory) -> None:
    settings = make_settings([{"name": "c", "provider": "anthropic", "model": "claude-x",
                               "api_key": "k"}])
    provider = build_provider(settings.deployments[0], settings=settings)
    assert isinstance(provider, AnthropicProvider)
    assert provider.url == "https://api.anthropic.com/v1/messages"
    assert provider.headers["anthropic-version"] == "2023-06-01"


def write_and_load(tmp_path: Path, models: list[dict[str, Any]], **env: str) -> None:
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump({"models": models}))
    load_settings({"NEUROROUTE_MASTER_KEY": "sk-test-master", "NEUROROUTE_CONFIG": str(path),
                   **env})


OAUTH = {"type": "oauth2_client_credentials", "token_url": "http://auth.test/token",
         "client_id": "id", "client_secret": "secret"}


@pytest.mark.parametrize(("entry", "expected"), [
    ({"provider": "azure", "api_base": AZURE_BASE},
     "models[0].api_version: required for provider 'azure'"),
    ({"provider": "openai", "api_base": "http://h/v1", "api_version": "2024-10-21"},
     "models[0].api_version: only used by provider 'azure'"),
    ({"provider": "openai", "api_base": "http://h/v1", "anthropic_version": "2023-06-01"},
     "models[0].anthropic_version: only used by provider 'anthropic'"),
    ({"provider": "vllm", "default_max_tokens": 100},
     "models[0].default_max_tokens: only used by provider 'anthropic'"),
    ({"provider": "anthropic", "default_max_tokens": 0}, "models[0].default_max_tokens"),
    ({"provider": "azure"}, "models[0].api_base: required for provider 'azure'"),
    ({"provider": "mock", "auth": OAUTH}, "models[0].auth: the mock provider has no upstream"),
    ({"provider": "vllm", "api_key": "k", "auth": OAUTH},
     "models[0].auth: give either api_key or auth, not both"),
    ({"provider": "vllm", "auth": {**OAUTH, "type": "password"}}, "models[0].auth.type"),
    ({"provider": "vllm", "auth": {k: v for k, v in OAUTH.items() if k != "token_url"}},
     "models[0].auth.token_url: Missing data"),
    ({"provider": "vllm", "auth": {**OAUTH, "token_url": "not a url"}},
     "models[0].auth.token_url: Not a valid URL"),
    ({"provider": "vllm", "auth": {**OAUTH, "client_secret": "os.environ/NOPE_SECRET"}},
     "models[0].auth.client_secret: environment variable NOPE_SECRET is not set"),
    ({"provider": "vllm", "auth": {**OAUTH, "client_auth": "header"}},
     "models[0].auth.client_auth"),
    ({"provider": "vllm", "auth": {**OAUTH, "extra": 1}}, "models[0].auth.extra: Unknown field"),
])
def test_config_errors_of_the_new_fields(tmp_path: Path, entry: dict[str, Any],
                                         expected: str) -> None:
    with pytest.raises(ConfigError) as info:
        write_and_load(tmp_path, [{"name": "x", "model": "m", **entry}])
    assert expected in str(info.value)


def test_oauth_client_id_and_secret_from_the_environment(make_settings: SettingsFactory) -> None:
    settings = make_settings([{"name": "x", "provider": "openai", "model": "m",
                               "api_base": "http://h/v1",
                               "auth": {**OAUTH, "client_id": "os.environ/CID",
                                        "client_secret": "os.environ/CSECRET",
                                        "scope": "s"}}],
                             CID="client-1", CSECRET="very-secret")
    auth = settings.deployments[0].auth
    assert auth is not None and (auth.client_id, auth.client_secret) == ("client-1",
                                                                          "very-secret")
    assert "very-secret" not in str(settings.public_dict())
    assert "very-secret" not in repr(settings)


def test_readme_providers_example_is_a_valid_config(tmp_path: Path) -> None:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    section = readme.split("### Providers", 1)[1]
    example = section.split("```yaml\n", 1)[1].split("```", 1)[0]
    path = tmp_path / "providers.yaml"
    path.write_text(example)
    env = {name: "value" for name in ("ANTHROPIC_API_KEY", "AZURE_OPENAI_API_KEY",
                                      "AICORE_CLIENT_ID", "AICORE_CLIENT_SECRET")}
    settings = load_settings({"NEUROROUTE_MASTER_KEY": "sk-test-master",
                              "NEUROROUTE_CONFIG": str(path), **env})
    assert [d.provider for d in settings.deployments] == [
        "anthropic", "azure", "lmstudio", "vllm", "ollama", "openai"]
    for dep in settings.deployments:
        build_provider(dep, settings=settings).close()
