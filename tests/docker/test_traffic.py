"""Traffic through nginx's published port to the two gateway replicas, as a client sees it."""

from __future__ import annotations

import re
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import openai
import requests

from tests.docker.conftest import AUTH
from tests.docker.stack import MASTER_KEY, Stack, docker
from tests.openai_spec import assert_valid

MODEL = "mock-gpt"  # the shipped config's mock: 24 tokens, 15 ms apart when streamed
MESSAGES = [{"role": "user", "content": "Hello from the container test"}]


@dataclass
class Answer:
    request_id: str
    stream: bool
    status: int
    complete: bool  # the JSON body parsed, or the stream ended with data: [DONE]
    error: str = ""
    worker: str = ""  # X-NeuroRoute-Worker


def chat(session: requests.Session, url: str, key: str, *, stream: bool) -> Answer:
    """One chat completion with a request id of our own, read to the end."""
    rid = uuid.uuid4().hex
    headers = {"Authorization": f"Bearer {key}", "X-Request-ID": rid}
    body = {"model": MODEL, "messages": MESSAGES, "stream": stream}
    try:
        with session.post(f"{url}/v1/chat/completions", json=body, headers=headers,
                          stream=stream, timeout=30) as resp:
            worker = resp.headers.get("X-NeuroRoute-Worker", "")
            if not stream:
                complete = resp.status_code == 200 and bool(resp.json()["choices"])
                return Answer(rid, stream, resp.status_code, complete, resp.text[:200], worker)
            lines = [line for line in resp.iter_lines(decode_unicode=True) if line]
            return Answer(rid, stream, resp.status_code, lines[-1:] == ["data: [DONE]"],
                          lines[-1][:200] if lines else "", worker)
    except (requests.RequestException, ValueError) as exc:
        return Answer(rid, stream, 0, False, f"{type(exc).__name__}: {exc}")


def usage_rows(stack: Stack, key_id: str) -> dict[str, tuple[int, str, int]]:
    """request id -> (status, model, total tokens) of the key's usage records in PostgreSQL."""
    assert re.fullmatch(r"[A-Za-z0-9_-]+", key_id)
    rows = stack.psql("SELECT request_id, status, model, total_tokens FROM usage_records "
                      f"WHERE key_id = '{key_id}'")
    counts = Counter(row[0] for row in rows)
    assert not [rid for rid, n in counts.items() if n > 1], "a request was recorded twice"
    return {rid: (int(status), model, int(tokens)) for rid, status, model, tokens in rows}


def wait_for_usage(stack: Stack, key_id: str, request_ids: set[str],
                   timeout: float = 30) -> dict[str, tuple[int, str, int]]:
    """The key's usage rows once every request in ``request_ids`` has one (batched writes)."""
    deadline = time.monotonic() + timeout
    while True:
        rows = usage_rows(stack, key_id)
        missing = request_ids - rows.keys()
        if not missing or time.monotonic() > deadline:
            assert not missing, f"{len(missing)} of {len(request_ids)} usage rows never arrived"
            return rows
        time.sleep(0.5)


def test_chat_completion_through_nginx_with_the_openai_sdk(stack: Stack) -> None:
    with openai.OpenAI(base_url=f"{stack.url}/v1", api_key=MASTER_KEY, max_retries=0,
                       timeout=30) as client:
        assert MODEL in [model.id for model in client.models.list()]
        raw = client.chat.completions.with_raw_response.create(model=MODEL, messages=MESSAGES)
        assert raw.headers.get("x-neuroroute-worker")
        reply = raw.parse()
        assert_valid(reply.model_dump(exclude_unset=True), "CreateChatCompletionResponse")
        assert reply.choices[0].message.content
        assert reply.usage is not None and reply.usage.completion_tokens == 24

        streamed = client.chat.completions.create(model=MODEL, messages=MESSAGES, stream=True)
        text = "".join(chunk.choices[0].delta.content or "" for chunk in streamed
                       if chunk.choices)
        assert text == reply.choices[0].message.content


def test_stream_through_nginx_arrives_chunk_by_chunk(stack: Stack) -> None:
    body = {"model": MODEL, "messages": MESSAGES, "stream": True}
    arrivals: list[tuple[float, str]] = []
    with requests.post(f"{stack.url}/v1/chat/completions", json=body, headers=AUTH,
                       stream=True, timeout=30) as resp:
        assert resp.status_code == 200
        assert resp.headers["Content-Type"].startswith("text/event-stream")
        for line in resp.iter_lines(chunk_size=None, decode_unicode=True):
            if line:
                arrivals.append((time.monotonic(), line))
    assert arrivals[-1][1] == "data: [DONE]"
    chunks = [t for t, line in arrivals if line.startswith("data: {")]
    assert len(chunks) >= 24
    # The mock sends a token every 15 ms: relayed as they come, the chunks spread over about
    # 0.35 s; buffered by a proxy, they would arrive together.
    assert chunks[-1] - chunks[0] > 0.2


def test_admin_key_works_on_both_replicas_and_its_usage_is_in_postgres(
        stack: Stack, client_key: dict[str, str]) -> None:
    answers: list[Answer] = []
    replicas: set[str] = set()
    with requests.Session() as session:
        while len(replicas) < 2 and len(answers) < 24:
            batch = [chat(session, stack.url, client_key["key"], stream=bool(i % 2))
                     for i in range(4)]
            answers += batch
            assert all(a.status == 200 and a.complete and a.worker for a in batch), batch
            replicas = set(stack.answered_by(a.request_id for a in answers).values())
    # Both replicas' workers have small pids of their own (X-NeuroRoute-Worker may be the same
    # number in both containers); the access logs tell which container answered.
    assert replicas == set(stack.containers("gateway")), "nginx must reach both replicas"

    rows = wait_for_usage(stack, client_key["id"], {a.request_id for a in answers})
    for answer in answers:
        status, model, tokens = rows[answer.request_id]
        assert (status, model) == (200, MODEL) and tokens > 24


def _load(stack: Stack, key: str, stop: threading.Event, answers: list[Answer]) -> None:
    deadline = time.monotonic() + 150  # bounded even if the test never sets `stop`
    with requests.Session() as session:
        stream = False
        while not stop.is_set() and time.monotonic() < deadline:
            answers.append(chat(session, stack.url, key, stream=stream))
            stream = not stream


def _log_time(line: dict[str, Any]) -> float:
    return datetime.fromisoformat(str(line["ts"]).replace("Z", "+00:00")).timestamp()


def _in_flight_at_stop(stack: Stack, container: str, request_ids: set[str]) -> set[str]:
    """Our requests the container had started before SIGTERM and finished after it."""
    drained: set[str] = set()
    term_at = None
    for line in stack.log_lines(container):
        if line.get("msg") == "Handling signal: term":
            term_at = _log_time(line)
        elif line.get("msg") == "Shutting down: Master":
            term_at = None
        elif term_at is not None and line.get("request_id") in request_ids:
            started = _log_time(line) - float(line["latency_ms"]) / 1000
            if started < term_at:
                drained.add(str(line["request_id"]))
    return drained


def test_restarting_one_gateway_loses_no_request_and_no_usage_row(
        stack: Stack, client_key: dict[str, str]) -> None:
    victim = stack.containers("gateway")[0]
    stop = threading.Event()
    answers: list[Answer] = []
    threads = [threading.Thread(target=_load, args=(stack, client_key["key"], stop, answers))
               for _ in range(8)]
    for thread in threads:
        thread.start()
    try:
        time.sleep(2)  # both replicas busy
        docker("restart", victim, timeout=200)  # SIGTERM, drain, start again
        stack.wait_healthy(victim)
        # Keep the load on until nginx sends the restarted replica traffic again.
        back_at = len(answers)
        deadline = time.monotonic() + 40
        while time.monotonic() < deadline:
            time.sleep(1)
            later = {a.request_id for a in answers[back_at:]}
            if victim in stack.answered_by(later).values():
                break
    finally:
        stop.set()
        for thread in threads:
            thread.join(60)

    failed = [a for a in answers if a.status != 200 or not a.complete]
    assert not failed, f"{len(failed)} of {len(answers)} requests failed: {failed[:5]}"
    ids = {a.request_id for a in answers}
    served = stack.answered_by(ids)
    assert set(served) == ids, "every request is in one replica's access log"
    drained = _in_flight_at_stop(stack, victim, ids)
    after = [rid for rid, where in stack.answered_by(
        {a.request_id for a in answers[back_at:]}).items() if where == victim]
    print(f"restart under load: {len(answers)} requests, {len(drained)} in flight on the "
          f"stopping replica at SIGTERM finished, {len(after)} served by it once back")
    assert drained, "requests in flight at SIGTERM finished"
    assert after, "nginx sends the restarted replica traffic again"

    rows = wait_for_usage(stack, client_key["id"], ids)
    assert all(rows[rid][0] == 200 for rid in ids)
