"""Limits and cache across Gunicorn workers and gateway instances sharing a real Redis."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import aiohttp
import openai
import pytest
import redis as redis_client
import requests

from app.admission.service import REDIS_RETRY_S
from tests.openai_spec import assert_valid
from tests.procs import MASTER_KEY, running, start_gateway
from tests.services import redis_url, start_private_redis, unique_namespace

pytestmark = [pytest.mark.integration, pytest.mark.e2e]
AUTH = {"Authorization": f"Bearer {MASTER_KEY}"}
MODELS = [{"name": "mock-fast", "provider": "mock", "model": "mock-fast",
           "mock": {"tokens": 4, "latency_ms": 20}},
          {"name": "cached", "provider": "mock", "model": "cached", "mock": {"tokens": 6},
           "cache": {"ttl": 120}}]


def limited_env(url: str, namespace: str, rpm: int) -> dict[str, str]:
    return {"NEUROROUTE_REDIS_URL": url, "NEUROROUTE_REDIS_NAMESPACE": namespace,
            "NEUROROUTE_DEFAULT_RPM": str(rpm)}


async def burst(urls: list[str], total: int) -> list[tuple[int, dict[str, str]]]:
    """``total`` concurrent chat requests spread over ``urls``, each on a new connection."""
    body = {"model": "mock-fast", "messages": [{"role": "user", "content": "hi"}]}

    async def one(session: aiohttp.ClientSession, i: int) -> tuple[int, dict[str, str]]:
        # Arrivals spread over ~0.2 s (still concurrent: each request takes 20 ms upstream),
        # so that both workers accept some; one burst would be drained by one worker.
        await asyncio.sleep((i % 20) * 0.01)
        async with session.post(f"{urls[i % len(urls)]}/v1/chat/completions", json=body,
                                headers=AUTH) as resp:
            await resp.read()
            return resp.status, dict(resp.headers)

    connector = aiohttp.TCPConnector(force_close=True, limit=0)
    async with aiohttp.ClientSession(connector=connector) as session:
        return await asyncio.gather(*(one(session, i) for i in range(total)))


def assert_exactly(results: list[tuple[int, dict[str, str]]], allowed: int) -> None:
    statuses = [status for status, _ in results]
    assert statuses.count(200) == allowed, statuses
    assert statuses.count(429) == len(results) - allowed, statuses
    for status, headers in results:
        assert headers["x-ratelimit-limit-requests"] == str(allowed)
        if status == 429:
            assert int(headers["Retry-After"]) >= 1
            assert headers["x-ratelimit-remaining-requests"] == "0"


def serving_pids(results: list[tuple[int, dict[str, str]]]) -> set[str]:
    """The workers that answered (X-NeuroRoute-Worker)."""
    return {headers["X-NeuroRoute-Worker"] for _, headers in results}


def test_limit_is_exact_across_two_workers(tmp_path: Path) -> None:
    # Which worker accepts a connection is the kernel's choice, and one gevent worker can
    # drain a whole burst. Every attempt must be exact; we repeat (fresh gateway, fresh
    # counters) until an attempt in which both workers served, so the check is meaningful.
    for _attempt in range(8):
        env = limited_env(redis_url(), unique_namespace(), rpm=25)
        with running(start_gateway(tmp_path, MODELS, workers=2, env=env)) as gw:
            results = asyncio.run(burst([gw.url], 80))
            assert_exactly(results, 25)
            if len(serving_pids(results)) == 2:
                return
    pytest.fail("in 8 attempts the two workers never shared a burst")


def test_limit_is_exact_across_two_instances(tmp_path: Path) -> None:
    env = limited_env(redis_url(), unique_namespace(), rpm=30)
    with running(start_gateway(tmp_path, MODELS, env=env)) as one, \
            running(start_gateway(tmp_path, MODELS, env=env)) as two:
        assert_exactly(asyncio.run(burst([one.url, two.url], 90)), 30)


def test_redis_outage_falls_back_to_memory_and_recovers(tmp_path: Path) -> None:
    redis = start_private_redis(tmp_path)
    port = int(redis.url.rsplit(":", 1)[1].split("/")[0])
    namespace = unique_namespace()
    with running(redis):
        env = {**limited_env(redis.url, namespace, rpm=1000)}
        with running(start_gateway(tmp_path, MODELS, env=env)) as gw:
            def ask(**extra: Any) -> requests.Response:
                return requests.post(f"{gw.url}/v1/chat/completions", headers=AUTH, timeout=10,
                                     json={"model": "mock-fast", "messages": [
                                         {"role": "user", "content": "x"}], **extra})

            assert ask().headers["x-ratelimit-remaining-requests"] == "999"
            redis.stop()  # Redis goes away mid-test
            started = time.monotonic()
            during = [ask() for _ in range(5)]
            assert all(r.status_code == 200 for r in during)
            assert time.monotonic() - started < 5  # no per-request stall on the dead Redis
            # In-memory counting took over, from the last count this worker saw in Redis (1):
            # the switch never gives a worker its whole limit again.
            assert during[-1].headers["x-ratelimit-remaining-requests"] == "994"
            assert "falling back to in-memory" in gw.output().lower()

            # Redis comes back: counting is shared again within REDIS_RETRY_S (+ a request).
            with running(start_private_redis(tmp_path, port)):
                store = redis_client.Redis.from_url(redis.url)
                back = time.monotonic()
                while time.monotonic() - back < 10 and not store.keys(f"*{namespace}*"):
                    assert ask().status_code == 200
                    time.sleep(0.05)
                assert store.keys(f"*{namespace}*"), "limits never went back to Redis"
                assert time.monotonic() - back <= REDIS_RETRY_S + 1.0
                # INFO lines are written in batches (within a fraction of a second).
                deadline = time.monotonic() + 2
                while "recovered" not in gw.output().lower() and time.monotonic() < deadline:
                    time.sleep(0.05)
                assert "recovered" in gw.output().lower()


def test_cache_is_shared_by_workers_through_redis(tmp_path: Path) -> None:
    env = {"NEUROROUTE_REDIS_URL": redis_url(), "NEUROROUTE_REDIS_NAMESPACE": unique_namespace()}
    with running(start_gateway(tmp_path, MODELS, workers=2, env=env)) as gw:
        body = {"model": "cached", "messages": [{"role": "user", "content": "cache me"}]}
        answers = []
        for _ in range(6):  # new connections: both workers answer some of these
            resp = requests.post(f"{gw.url}/v1/chat/completions", json=body, timeout=10,
                                 headers={**AUTH, "Connection": "close"})
            answers.append((resp.headers["x-neuroroute-cache"], resp.content))
        assert answers[0][0] == "miss"
        assert [status for status, _ in answers[1:]] == ["hit"] * 5
        assert {content for _, content in answers} == {answers[0][1]}

        client = openai.OpenAI(base_url=f"{gw.url}/v1", api_key=MASTER_KEY, max_retries=0)
        stream = client.chat.completions.with_raw_response.create(
            model="cached", messages=body["messages"], stream=True)
        assert stream.headers["x-neuroroute-cache"] == "hit"
        chunks = list(stream.parse())
        for chunk in chunks:
            assert_valid(chunk.model_dump(exclude_unset=True),
                         "CreateChatCompletionStreamResponse")
        text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        cached = requests.post(f"{gw.url}/v1/chat/completions", json=body, headers=AUTH,
                               timeout=10).json()
        assert text == cached["choices"][0]["message"]["content"]

        different_params = requests.post(f"{gw.url}/v1/chat/completions", headers=AUTH, timeout=10,
                                   json={**body, "temperature": 0.3})
        assert different_params.headers["x-neuroroute-cache"] == "miss"
