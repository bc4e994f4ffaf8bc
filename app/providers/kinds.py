"""The provider registry: kind name -> implementing class, as import strings.

Adding a provider is one new module plus one line here. The classes are named as strings so
this module imports no HTTP client: the config schema validates ``provider:`` against these
names, and the Gunicorn master imports it to check the configuration before workers start,
which must not import ``ssl`` before gevent patches the workers.
"""

PROVIDERS: dict[str, str] = {
    "mock": "app.providers.mock:MockProvider",
    "openai": "app.providers.openai:OpenAIProvider",
}

PROVIDER_KINDS: tuple[str, ...] = tuple(PROVIDERS)
