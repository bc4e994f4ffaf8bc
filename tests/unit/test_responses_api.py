"""``/v1/responses`` in process (the app factory, its test client, the built-in mock model):
the stored conversation, who may see it, the input items list, errors in OpenAI's envelope,
limits, usage and metrics, the OpenAPI document."""

from __future__ import annotations

import json
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from app.db.models import UsageRow
from tests.conftest import AUTH
from tests.openai_spec import assert_valid
from tests.unit.test_observability import metric_value

Headers = dict[str, str]


def create(client: FlaskClient, headers: Headers = AUTH, status: int = 200,
           **body: Any) -> dict[str, Any]:
    """POST /v1/responses (the mock model, "Hello" unless given); its JSON body."""
    with client.post("/v1/responses", headers=headers,
                     json={"model": "mock-fast", "input": "Hello", **body}) as resp:
        payload: dict[str, Any] = resp.get_json()
        assert resp.status_code == status, payload
    return payload


def events(client: FlaskClient, headers: Headers = AUTH, **body: Any) -> list[dict[str, Any]]:
    """A streamed POST /v1/responses: each event's data, checked against its ``event:``."""
    with client.post("/v1/responses", headers=headers, json={
            "model": "mock-fast", "input": "Hello", "stream": True, **body}) as resp:
        assert resp.status_code == 200 and resp.mimetype == "text/event-stream"
        raw = resp.get_data(as_text=True)
    out = []
    for block in filter(None, raw.split("\n\n")):
        name, data = block.split("\n")
        out.append(json.loads(data.removeprefix("data: ")))
        assert name == f"event: {out[-1]['type']}"
    return out


def new_key(client: FlaskClient, name: str, team: str | None = None, **fields: Any) -> Headers:
    """An admin-created client key (in ``team``, by name, created on demand)."""
    if team is not None:
        teams = client.get(f"/admin/teams?name={team}", headers=AUTH).get_json()["data"]
        team_id = teams[0]["id"] if teams else client.post(
            "/admin/teams", json={"name": team}, headers=AUTH).get_json()["id"]
        fields["team_id"] = team_id
    created = client.post("/admin/keys", json={"name": name, **fields}, headers=AUTH)
    assert created.status_code == 201, created.get_json()
    return {"Authorization": f"Bearer {created.get_json()['key']}"}


# --- the conversation ----------------------------------------------------------------------

def test_a_response_is_stored_and_continued(client: FlaskClient) -> None:
    first = create(client, instructions="Be brief.", metadata={"turn": "1"})
    assert_valid(first, "Response")
    assert (first["status"], first["store"], first["previous_response_id"]) == (
        "completed", True, None)
    second = create(client, input="And then?", previous_response_id=first["id"])
    third = events(client, input=[{"role": "user", "content": "Last one"}],
                   previous_response_id=second["id"])[-1]["response"]
    assert third["previous_response_id"] == second["id"]
    assert client.get(f"/v1/responses/{first['id']}", headers=AUTH).get_json() == first
    stored = client.get(f"/v1/responses/{third['id']}", headers=AUTH).get_json()
    assert stored == third and stored["status"] == "completed"


def test_the_stored_conversation_is_sent_each_turn(client: FlaskClient) -> None:
    """What the (mock) chat upstream gets for the third turn: every earlier input and output,
    this turn's instructions only (OpenAI does not carry them over)."""
    gw = client.application.extensions["neuroroute"]
    sent: list[dict[str, Any]] = []
    provider = gw.registry.get("mock-fast").providers[0]
    original = provider.complete

    def spy(request: Any) -> Any:
        sent.append(request.body)
        return original(request)

    provider.complete = spy
    first = create(client, instructions="Old rules.", input="One")
    second = create(client, input="Two", previous_response_id=first["id"])
    create(client, input="Three", instructions="New rules.", previous_response_id=second["id"])
    texts = [first["output"][0]["content"][0]["text"], second["output"][0]["content"][0]["text"]]
    assert sent[2]["messages"] == [
        {"role": "system", "content": "New rules."},
        {"role": "user", "content": "One"}, {"role": "assistant", "content": texts[0]},
        {"role": "user", "content": "Two"}, {"role": "assistant", "content": texts[1]},
        {"role": "user", "content": "Three"}]


def test_store_false_keeps_nothing(client: FlaskClient) -> None:
    response = create(client, store=False)
    assert response["store"] is False
    streamed = events(client, store=False)[-1]["response"]
    for rid in (response["id"], streamed["id"]):
        assert client.get(f"/v1/responses/{rid}", headers=AUTH).status_code == 404
    error = create(client, status=400, previous_response_id=response["id"])["error"]
    assert error == {"message": f"Previous response with id '{response['id']}' not found.",
                     "type": "invalid_request_error", "param": "previous_response_id",
                     "code": "previous_response_not_found"}


def test_a_deleted_response_breaks_the_chain_that_follows_it(client: FlaskClient) -> None:
    first = create(client)
    second = create(client, previous_response_id=first["id"])
    deleted = client.delete(f"/v1/responses/{first['id']}", headers=AUTH)
    assert deleted.get_json() == {"id": first["id"], "object": "response", "deleted": True}
    assert client.delete(f"/v1/responses/{first['id']}", headers=AUTH).status_code == 404
    error = create(client, status=400, previous_response_id=second["id"])["error"]
    assert (error["param"], error["message"]) == (
        "previous_response_id", f"Previous response with id '{first['id']}' not found.")


# --- who may see a response ----------------------------------------------------------------

def test_a_response_is_its_keys_and_its_teams(client: FlaskClient) -> None:
    alice = new_key(client, "alice", team="search")
    colleague = new_key(client, "colleague", team="search")
    solo, outsider = new_key(client, "solo"), new_key(client, "outsider", team="ads")
    mine = create(client, alice)
    for key in (alice, colleague):  # the creator's team: see, list, continue
        assert client.get(f"/v1/responses/{mine['id']}", headers=key).status_code == 200
        assert client.get(f"/v1/responses/{mine['id']}/input_items",
                          headers=key).status_code == 200
        create(client, key, previous_response_id=mine["id"])
    for key in (solo, outsider, AUTH):  # anyone else: as if it did not exist
        error = client.get(f"/v1/responses/{mine['id']}", headers=key).get_json()["error"]
        assert error == {"message": f"Response with id '{mine['id']}' not found.",
                         "type": "invalid_request_error", "param": "response_id",
                         "code": "not_found"}
        assert client.get(f"/v1/responses/{mine['id']}/input_items",
                          headers=key).status_code == 404
        assert client.delete(f"/v1/responses/{mine['id']}", headers=key).status_code == 404
        create(client, key, 400, previous_response_id=mine["id"])
    lonely = create(client, solo)  # a key without a team: its own only
    assert client.get(f"/v1/responses/{lonely['id']}", headers=alice).status_code == 404
    assert client.get(f"/v1/responses/{lonely['id']}", headers=solo).status_code == 200
    assert client.delete(f"/v1/responses/{mine['id']}", headers=colleague).status_code == 200


# --- input items ---------------------------------------------------------------------------

ITEMS = [
    {"role": "developer", "content": "Answer briefly."},
    {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "Hi"}]},
    {"role": "assistant", "content": "Hello."},
    {"type": "function_call", "call_id": "call_1", "name": "f", "arguments": "{}"},
    {"type": "function_call_output", "call_id": "call_1", "output": "42"},
]


def test_input_items_are_listed_with_ids_newest_first(client: FlaskClient) -> None:
    rid = create(client, input=ITEMS)["id"]
    listing = client.get(f"/v1/responses/{rid}/input_items", headers=AUTH).get_json()
    assert_valid(listing, "ResponseItemList")
    assert [i["type"] for i in listing["data"]] == [
        "function_call_output", "function_call", "message", "message", "message"]
    assert listing["data"][2]["content"] == [
        {"annotations": [], "logprobs": [], "type": "output_text", "text": "Hello."}]
    assert listing["data"][4]["content"] == [{"type": "input_text", "text": "Answer briefly."}]
    assert listing["data"][1]["id"] == "fc_1" and listing["has_more"] is False
    ids = [i["id"] for i in listing["data"]]
    assert (listing["first_id"], listing["last_id"]) == (ids[0], ids[-1])
    assert len(set(ids)) == 5


def test_input_items_pages(client: FlaskClient) -> None:
    rid = create(client, input=ITEMS)["id"]
    url = f"/v1/responses/{rid}/input_items"
    every = client.get(f"{url}?order=asc&limit=100", headers=AUTH).get_json()["data"]
    first = client.get(f"{url}?order=asc&limit=2", headers=AUTH).get_json()
    assert (first["data"], first["has_more"]) == (every[:2], True)
    rest = client.get(f"{url}?order=asc&limit=2&after={first['last_id']}",
                      headers=AUTH).get_json()
    assert rest["data"] == every[2:4]
    last = client.get(f"{url}?order=asc&after={rest['last_id']}", headers=AUTH).get_json()
    assert (last["data"], last["has_more"]) == (every[4:], False)


@pytest.mark.parametrize(("query", "param"), [
    ("limit=0", "limit"), ("limit=101", "limit"), ("order=up", "order"),
    ("after=msg_nope", "after"), ("before=x", "before"),
])
def test_input_items_refuse_bad_queries(client: FlaskClient, query: str, param: str) -> None:
    rid = create(client)["id"]
    resp = client.get(f"/v1/responses/{rid}/input_items?{query}", headers=AUTH)
    assert (resp.status_code, resp.get_json()["error"]["param"]) == (400, param)


# --- errors, limits, usage, metrics --------------------------------------------------------

@pytest.mark.parametrize(("change", "param", "code"), [
    ({"tools": [{"type": "web_search"}]}, "tools[0].type", "unsupported_parameter"),
    ({"tools": [{"type": "file_search", "vector_store_ids": ["vs_1"]}]}, "tools[0].type",
     "unsupported_parameter"),
    ({"background": True}, "background", "unsupported_parameter"),
    ({"conversation": "conv_1"}, "conversation", "unknown_parameter"),
    ({"input": None}, "input", "missing_required_parameter"),
    ({"max_output_tokens": 4}, "max_output_tokens", "invalid_value"),
])
def test_what_cannot_be_served_is_a_400_naming_the_field(
        client: FlaskClient, change: dict[str, Any], param: str, code: str) -> None:
    error = create(client, status=400, **change)["error"]
    assert (error["param"], error["code"], error["type"]) == (param, code,
                                                              "invalid_request_error")


def test_unknown_and_forbidden_models(client: FlaskClient) -> None:
    assert create(client, status=404, model="nope")["error"]["code"] == "model_not_found"
    limited = new_key(client, "limited", allowed_models=["gpt-test"])
    assert create(client, limited, 404)["error"]["param"] == "model"


def test_the_keys_rate_limit_applies(client: FlaskClient) -> None:
    key = new_key(client, "slow", rpm_limit=1)
    create(client, key)
    with client.post("/v1/responses", headers=key,
                     json={"model": "mock-fast", "input": "Again"}) as resp:
        assert resp.status_code == 429
        assert resp.get_json()["error"]["code"] == "rate_limit_exceeded"
        assert resp.headers["x-ratelimit-remaining-requests"] == "0"


def test_a_spent_budget_is_openais_insufficient_quota(client: FlaskClient) -> None:
    error = create(client, new_key(client, "broke", max_budget=0.0), 429)["error"]
    assert (error["type"], error["code"]) == ("insufficient_quota", "insufficient_quota")


def test_usage_records_and_metrics_say_responses(client: FlaskClient) -> None:
    gw = client.application.extensions["neuroroute"]
    create(client, headers={**AUTH, "X-Request-ID": "resp-usage-1"})
    events(client, headers={**AUTH, "X-Request-ID": "resp-usage-2"})
    assert gw.usage_writer.write_pending()
    with gw.db.session() as session:
        rows = session.scalars(select(UsageRow).where(
            UsageRow.request_id.in_(["resp-usage-1", "resp-usage-2"]))).all()
        assert sorted((r.api, r.stream, r.model, r.status) for r in rows) == [
            ("responses", False, "mock-fast", 200), ("responses", True, "mock-fast", 200)]
        assert all(r.completion_tokens == 5 and not r.estimated for r in rows)
    text = client.get("/metrics").get_data(as_text=True)
    assert metric_value(text, "neuroroute_requests_total", route="/v1/responses",
                        model="mock-fast", status="200") >= 2
    assert metric_value(text, "neuroroute_tokens_total", model="mock-fast",
                        direction="completion", api="responses") >= 10


def test_the_document_lists_the_endpoints(app: Flask, client: FlaskClient) -> None:
    doc = client.get("/openapi.json").get_json()
    paths = doc["paths"]
    assert set(paths["/v1/responses"]) == {"post"}
    assert set(paths["/v1/responses/{response_id}"]) - {"parameters"} == {"get", "delete"}
    assert set(paths["/v1/responses/{response_id}/input_items"]) - {"parameters"} == {"get"}
    create_op = paths["/v1/responses"]["post"]
    body = create_op["requestBody"]["content"]["application/json"]["schema"]
    assert body == {"$ref": "#/components/schemas/ResponsesRequest"}
    request = doc["components"]["schemas"]["ResponsesRequest"]
    assert request["additionalProperties"] is False  # unknown fields are a 400
    assert {"model", "input", "previous_response_id", "store", "tools"} <= set(
        request["properties"])
    assert set(create_op["responses"]["200"]["content"]) == {"application/json",
                                                              "text/event-stream"}
    for path, method in (("/v1/responses/{response_id}", "get"),
                         ("/v1/responses/{response_id}", "delete"),
                         ("/v1/responses/{response_id}/input_items", "get")):
        assert "404" in paths[path][method]["responses"]
