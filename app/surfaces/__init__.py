"""Inbound API surfaces other than OpenAI chat completions, translated to and from it.

Each surface is a set of pure functions and stream translators (no Flask, no HTTP, no
database): a request in the surface's shape becomes the chat completion body the gateway's
chat pipeline routes, and the pipeline's chat completion (or chat stream) becomes the
surface's answer. What both surfaces read from a chat answer is in :mod:`.chat` and
:mod:`.chat_stream`; the request checks both use, in each API's wording, in :mod:`.checks`.

* Anthropic Messages (``POST /v1/messages``): :mod:`.messages_request`, :mod:`.messages`,
  :mod:`.messages_stream`
* OpenAI Responses (``POST /v1/responses``): :mod:`.responses_request`,
  :mod:`.responses_store`, :mod:`.responses`, :mod:`.responses_stream`, and the gateway's
  side of the conversation state (stateless relays, stored items) in :mod:`.responses_state`
"""
