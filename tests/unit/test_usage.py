"""Usage accounting without a database: prices, records per request kind, the writer queue."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Sequence
from typing import Any

import pytest
import responses
from flask.testing import FlaskClient

from app import create_app
from app.pricing import DEFAULT_PRICES, FREE, Price, PriceTable
from app.providers.base import Usage
from app.usage.writer import UsageRecord, UsageWriter
from tests.conftest import AUTH, UPSTREAM, chat_body
from tests.unit.test_openai_provider import COMPLETION, chunk, sse

URL = f"{UPSTREAM}/chat/completions"


class ListSink:
    """Collects written batches; can be told to fail like an unreachable database."""

    def __init__(self) -> None:
        self.rows: list[UsageRecord] = []
        self.fail = False
        self.calls = 0

    def write(self, records: Sequence[UsageRecord]) -> None:
        self.calls += 1
        if self.fail:
            raise ConnectionError("database is down")
        self.rows.extend(records)

    def rejects(self, exc: BaseException) -> bool:
        return isinstance(exc, ValueError)


@pytest.fixture
def sink_client(make_settings: Any) -> tuple[FlaskClient, ListSink]:
    app = create_app(make_settings())
    sink = ListSink()
    gw = app.extensions["neuroroute"]
    # Written on demand in these tests.
    gw.chat.accounting.writer = UsageWriter(sink, batch_size=1000)
    return app.test_client(), sink


def post(client: FlaskClient, **kwargs: Any) -> Any:
    """A request whose response is closed, as a server closes it (which ends the record)."""
    with client.post("/v1/chat/completions", **kwargs) as resp:
        resp.get_data()
        return resp


def written(client: FlaskClient, sink: ListSink) -> list[UsageRecord]:
    assert client.application.extensions["neuroroute"].usage_writer.write_pending()
    return sink.rows


# --- prices -------------------------------------------------------------------------------

@pytest.mark.parametrize(("provider", "model", "expected"), [
    ("openai", "gpt-4o-mini", DEFAULT_PRICES["gpt-4o-mini"]),
    ("openai", "gpt-4o-mini-2024-07-18", DEFAULT_PRICES["gpt-4o-mini"]),  # dated snapshot
    ("openai", "gpt-4o-2024-11-20", DEFAULT_PRICES["gpt-4o"]),  # not mistaken for -mini
    ("anthropic", "claude-3-5-sonnet-20241022", DEFAULT_PRICES["claude-3-5-sonnet"]),
    ("mock", "anything", FREE),
    ("openai", "my-local-llama", None),
])
def test_price_lookup(provider: str, model: str, expected: Price | None) -> None:
    assert PriceTable().lookup(provider, model) == expected


def test_cost_with_cached_input_and_overrides() -> None:
    price = Price(2.0, 8.0, 0.5)
    usage = Usage(1_000_000, 500_000, 1_500_000, cached_tokens=400_000)
    assert price.cost(usage) == pytest.approx(0.6 * 2.0 + 0.4 * 0.5 + 0.5 * 8.0)
    table = PriceTable()
    assert table.lookup("openai", "gpt-4o", Price(1.0, 1.0)) == Price(1.0, 1.0)
    assert table.cost(usage, None) == (0.0, False)  # unknown price: 0, flagged


# --- records per request kind -------------------------------------------------------------

@responses.activate
def test_non_stream_record_with_upstream_usage_and_cost_header(
        sink_client: tuple[FlaskClient, ListSink]) -> None:
    client, sink = sink_client
    responses.post(URL, json={**COMPLETION, "model": "gpt-test-upstream"})
    resp = post(client, json=chat_body("gpt-test"), headers={**AUTH, "X-Request-ID": "u-1"})
    assert resp.status_code == 200
    assert resp.headers["x-neuroroute-cost"] == "unknown"  # no price for this model
    assert float(resp.headers["x-neuroroute-overhead-ms"]) >= 0
    [row] = written(client, sink)
    assert (row.request_id, row.key_id, row.model, row.deployment) == (
        "u-1", "master", "gpt-test", "gpt-test#0")
    assert (row.prompt_tokens, row.completion_tokens, row.total_tokens) == (9, 2, 11)
    assert row.estimated is False and row.price_known is False and row.cost == 0.0
    assert row.status == 200 and row.stream is False and row.cache_hit is False


@responses.activate
def test_stream_asks_upstream_for_usage_and_strips_it(
        sink_client: tuple[FlaskClient, ListSink]) -> None:
    client, sink = sink_client
    usage_chunk = {**chunk(), "choices": [],
                   "usage": {"prompt_tokens": 5, "completion_tokens": 3, "total_tokens": 8}}
    responses.post(URL, body=sse(chunk("a", usage=None), chunk(None, "stop", usage=None),
                                 usage_chunk), content_type="text/event-stream")
    resp = post(client, json=chat_body("gpt-test", stream=True), headers=AUTH)
    sent = json.loads(responses.calls[0].request.body)
    assert sent["stream_options"] == {"include_usage": True}  # the gateway asked
    assert b'"usage":{' not in resp.data  # the client did not, so it does not get it
    assert resp.data.endswith(b"data: [DONE]\n\n")
    [row] = written(client, sink)
    assert (row.total_tokens, row.estimated, row.stream) == (8, False, True)
    assert row.ttft_ms is not None


@responses.activate
def test_stream_usage_kept_when_the_client_asked(
        sink_client: tuple[FlaskClient, ListSink]) -> None:
    client, _ = sink_client
    usage_chunk = {**chunk(), "choices": [],
                   "usage": {"prompt_tokens": 5, "completion_tokens": 3, "total_tokens": 8}}
    responses.post(URL, body=sse(chunk("a"), usage_chunk), content_type="text/event-stream")
    resp = post(client, headers=AUTH, json=chat_body(
        "gpt-test", stream=True, stream_options={"include_usage": True}))
    assert b'"total_tokens":8' in resp.data.replace(b" ", b"")


def test_stream_usage_can_be_turned_off_per_deployment(make_settings: Any) -> None:
    from app.providers.base import ChatRequest
    from app.providers.openai import OpenAIProvider

    settings = make_settings([{"name": "old", "provider": "openai", "model": "m",
                               "api_base": UPSTREAM, "stream_usage": False}])
    provider = OpenAIProvider(settings.deployments[0], settings=settings)
    body = json.loads(provider.payload(ChatRequest(chat_body("old", stream=True), "old", "r")))
    assert "stream_options" not in body


@responses.activate
def test_upstream_without_usage_is_estimated(sink_client: tuple[FlaskClient, ListSink]) -> None:
    client, sink = sink_client
    responses.post(URL, body=sse(chunk("one"), chunk("two"), chunk(None, "stop")),
                   content_type="text/event-stream")
    post(client, json=chat_body("gpt-test", stream=True), headers=AUTH)
    [row] = written(client, sink)
    assert row.estimated is True
    assert row.completion_tokens == 2 and row.prompt_tokens > 0


def test_cancelled_stream_is_recorded_as_cancelled(
        sink_client: tuple[FlaskClient, ListSink], make_settings: Any) -> None:
    client, sink = sink_client
    resp = client.post("/v1/chat/completions", json=chat_body("mock-fast", stream=True),
                       headers=AUTH, buffered=False)
    iterator = iter(resp.response)
    next(iterator)  # the client reads one event, then goes away
    resp.close()
    [row] = written(client, sink)
    assert row.cancelled is True and row.stream is True


@responses.activate
def test_failed_requests_are_recorded(sink_client: tuple[FlaskClient, ListSink]) -> None:
    client, sink = sink_client
    responses.post(URL, json={"error": {"message": "boom", "type": "server_error",
                                        "param": None, "code": None}}, status=500)
    post(client, json=chat_body("gpt-test"), headers=AUTH)
    post(client, json=chat_body("nope"), headers=AUTH)
    post(client, json=chat_body("gpt-test"))  # no key: not usage
    rows = written(client, sink)
    assert [(r.status, r.model) for r in rows] == [(500, "gpt-test"), (404, "nope")]
    assert rows[1].error_code == "model_not_found" and rows[1].total_tokens == 0


def test_cached_answers_are_recorded_as_cache_hits(make_settings: Any) -> None:
    app = create_app(make_settings([{"name": "c", "provider": "mock", "model": "c",
                                     "cache": {}}]))
    sink = ListSink()
    app.extensions["neuroroute"].chat.accounting.writer = UsageWriter(sink)
    client = app.test_client()
    for _ in range(2):
        resp = post(client, json=chat_body("c"), headers=AUTH)
    assert resp.headers["x-neuroroute-cost"] == "0.00000000"
    assert app.extensions["neuroroute"].usage_writer.write_pending()
    assert [r.cache_hit for r in sink.rows] == [False, True]
    assert sink.rows[1].total_tokens == sink.rows[0].total_tokens and sink.rows[1].cost == 0


# --- the writer ---------------------------------------------------------------------------

def record(i: int) -> UsageRecord:
    return UsageRecord(f"r{i}", time.time(), "k", None, None, "m", "d", "mock", 1, 1, 2, 0,
                       False, 0.0, True, 1.0, None, 200, None, False, False, False, 1)


def test_writer_keeps_records_while_the_sink_fails_and_writes_them_later() -> None:
    sink = ListSink()
    writer = UsageWriter(sink, batch_size=10, interval=0.01, max_backoff=0.05)
    writer.start()
    sink.fail = True
    for i in range(25):
        writer.put(record(i))
    time.sleep(0.2)
    assert sink.rows == [] and len(writer) == 25 and writer.healthy is False
    sink.fail = False
    deadline = time.monotonic() + 5
    while len(sink.rows) < 25 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert [r.request_id for r in sink.rows] == [f"r{i}" for i in range(25)]  # in order, once
    assert writer.healthy is True
    writer.stop()


def test_writer_is_bounded_and_counts_what_it_drops() -> None:
    writer = UsageWriter(ListSink(), max_queue=5)
    accepted = [writer.put(record(i)) for i in range(8)]
    assert accepted == [True] * 5 + [False] * 3
    assert writer.dropped == 3 and len(writer) == 5


def test_flush_writes_everything_at_shutdown() -> None:
    sink = ListSink()
    writer = UsageWriter(sink, batch_size=7)
    for i in range(30):
        writer.put(record(i))
    assert writer.flush(timeout=2) is True
    assert len(sink.rows) == 30 and sink.calls == 5  # batches of 7


def test_concurrent_producers_lose_nothing() -> None:
    sink = ListSink()
    writer = UsageWriter(sink, batch_size=50, interval=0.01)
    writer.start()
    threads = [threading.Thread(target=lambda n=n: [writer.put(record(n * 1000 + i))
                                                    for i in range(500)]) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert writer.stop(timeout=5)
    assert len(sink.rows) == 4000 and len({r.request_id for r in sink.rows}) == 4000


class PickySink(ListSink):
    """Refuses (ValueError) any batch holding a record named "bad"; can go down mid-way."""

    def __init__(self, down_after: int | None = None) -> None:
        super().__init__()
        self.down_after = down_after  # the database goes away after this many good writes

    def write(self, records: Sequence[UsageRecord]) -> None:
        if self.down_after is not None and self.calls >= self.down_after:
            self.calls += 1
            raise ConnectionError("database is down")
        if any(r.request_id == "bad" for r in records):
            self.calls += 1
            raise ValueError("value too long")
        super().write(records)


def queued_writer(sink: ListSink, ids: list[str]) -> UsageWriter:
    """A writer holding one record per request id, in order."""
    writer = UsageWriter(sink, batch_size=100)
    for rid in ids:
        rec = record(0)
        rec.request_id = rid
        writer.put(rec)
    return writer


def test_a_refused_record_is_isolated_and_dropped_the_rest_is_written_in_order() -> None:
    sink = PickySink()
    ids = [f"r{i}" for i in range(5)] + ["bad"] + [f"r{i}" for i in range(5, 9)]
    writer = queued_writer(sink, ids)
    assert writer.write_pending() is True
    assert [r.request_id for r in sink.rows] == [i for i in ids if i != "bad"]
    assert len(writer) == 0 and writer.healthy


def test_an_outage_while_isolating_requeues_only_what_was_not_written() -> None:
    sink = PickySink(down_after=3)  # refused whole, first half written, then down
    ids = [f"r{i}" for i in range(4)] + ["bad"] + [f"r{i}" for i in range(4, 8)]
    writer = queued_writer(sink, ids)
    assert writer.write_pending() is False and writer.healthy is False
    written_first = [r.request_id for r in sink.rows]
    assert written_first and written_first == ids[:len(written_first)]
    queued = [r.request_id for r in writer._queue]
    assert queued == ids[len(written_first):]  # nothing lost, nothing twice, in order
    sink.down_after = None
    assert writer.write_pending() is True
    assert [r.request_id for r in sink.rows] == [i for i in ids if i != "bad"]


class ArrivalsSink(ListSink):
    """Each write lets requests queue more records meanwhile, as a yielding write does."""

    def __init__(self) -> None:
        super().__init__()
        self.writer: UsageWriter | None = None
        self.batches: list[int] = []

    def write(self, records: Sequence[UsageRecord]) -> None:
        self.batches.append(len(records))
        for i in range(2 if self.writer is not None else 0):
            self.writer.put(record(1000 + len(self.batches) * 10 + i))
        super().write(records)


def test_a_round_writes_what_was_queued_and_leaves_new_arrivals_for_the_next() -> None:
    sink = ArrivalsSink()
    writer = UsageWriter(sink, batch_size=100)
    sink.writer = writer
    for i in range(250):
        writer.put(record(i))
    assert writer.write_pending() is True
    # 250 queued: batches of 100, 100, 50, and not a tail of 2-record transactions.
    assert sink.batches == [100, 100, 50]
    assert len(writer) == 6  # what arrived meanwhile waits for the next round
    sink.writer = None  # traffic stops; the shutdown flush drains everything
    assert writer.flush(timeout=2) is True and len(writer) == 0 and len(sink.rows) == 256


class SmallBatchSink(ListSink):
    max_batch = 10  # as a sink that blocks the event loop (SQLite) declares


def test_a_blocking_sink_gets_at_most_its_max_batch_per_call() -> None:
    sink = SmallBatchSink()
    writer = UsageWriter(sink, batch_size=500)
    for i in range(25):
        writer.put(record(i))
    assert writer.write_pending() is True
    assert sink.calls == 3 and [r.request_id for r in sink.rows] == [f"r{i}" for i in range(25)]
