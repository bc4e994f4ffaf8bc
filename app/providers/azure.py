"""Azure OpenAI: the OpenAI relay with Azure's URL layout and ``api-key`` header.

Azure addresses a model by its *deployment* name in the path and versions the API with a
query parameter: ``{api_base}/openai/deployments/{model}/chat/completions?api-version=...``.
With ``auth:`` (Microsoft Entra ID client credentials) the bearer token replaces the key.
"""

from __future__ import annotations

from urllib.parse import quote, urlencode

from app.providers.base import RESPONSES
from app.providers.openai import OpenAIProvider
from app.providers.openai_native import PATHS


class AzureOpenAIProvider(OpenAIProvider):
    kind = "azure"

    def endpoint(self) -> str:
        deployment = self.deployment
        query = urlencode({"api-version": deployment.api_version})
        return (f"{deployment.api_base}/openai/deployments/{quote(deployment.model, safe='')}"
                f"/chat/completions?{query}")

    def endpoint_for(self, api: str) -> str:
        """Embeddings and completions under the deployment's path; the Responses API is
        Azure's v1 API, addressed by model in the body."""
        deployment = self.deployment
        if api == RESPONSES:
            return f"{deployment.api_base}/openai/v1/responses"
        query = urlencode({"api-version": deployment.api_version})
        return (f"{deployment.api_base}/openai/deployments/{quote(deployment.model, safe='')}"
                f"/{PATHS[api]}?{query}")

    def key_headers(self, key: str) -> dict[str, str]:
        return {"api-key": key}
