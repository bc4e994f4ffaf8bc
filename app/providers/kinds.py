"""The provider registry: kind name -> implementing class, as import strings.

Adding a provider is one new module plus one line here. The classes are named as strings so
this module imports no HTTP client: the config schema validates ``provider:`` against these
names, and the Gunicorn master imports it to check the configuration before workers start,
which must not import ``ssl`` before gevent patches the workers.

``lmstudio``, ``vllm`` and ``ollama`` are presets of the OpenAI-compatible relay: the same
class, with the server's usual local address as the default ``api_base`` and no key.
"""

PROVIDERS: dict[str, str] = {
    "mock": "app.providers.mock:MockProvider",
    "openai": "app.providers.openai:OpenAIProvider",
    "azure": "app.providers.azure:AzureOpenAIProvider",
    "anthropic": "app.providers.anthropic:AnthropicProvider",
    "lmstudio": "app.providers.openai:OpenAIProvider",
    "vllm": "app.providers.openai:OpenAIProvider",
    "ollama": "app.providers.openai:OpenAIProvider",
}

PROVIDER_KINDS: tuple[str, ...] = tuple(PROVIDERS)

# ``api_base`` when the model file gives none; kinds missing here require one.
DEFAULT_API_BASES: dict[str, str] = {
    "anthropic": "https://api.anthropic.com/v1",
    "lmstudio": "http://127.0.0.1:1234/v1",
    "vllm": "http://127.0.0.1:8000/v1",
    "ollama": "http://127.0.0.1:11434/v1",
}

# What a deployment serves when its entry does not say (``endpoints:``): chat. The mock model
# answers every family, so ``make run`` shows them all.
DEFAULT_ENDPOINTS: dict[str, tuple[str, ...]] = {
    "mock": ("chat", "embeddings", "completions"),
}
