"""Azure OpenAI: the OpenAI relay with Azure's URL layout and ``api-key`` header.

Azure addresses a model by its *deployment* name in the path and versions the API with a
query parameter: ``{api_base}/openai/deployments/{model}/chat/completions?api-version=...``.
With ``auth:`` (Microsoft Entra ID client credentials) the bearer token replaces the key.
"""

from __future__ import annotations

from urllib.parse import quote, urlencode

from app.providers.openai import OpenAIProvider


class AzureOpenAIProvider(OpenAIProvider):
    kind = "azure"

    def endpoint(self) -> str:
        deployment = self.deployment
        query = urlencode({"api-version": deployment.api_version})
        return (f"{deployment.api_base}/openai/deployments/{quote(deployment.model, safe='')}"
                f"/chat/completions?{query}")

    def key_headers(self, key: str) -> dict[str, str]:
        return {"api-key": key}
