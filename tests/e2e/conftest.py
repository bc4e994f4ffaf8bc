"""Real processes for end-to-end tests: one mock upstream per module, gateways per test/module."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.procs import Proc, _spawn, _wait_http, free_port, running, start_mock_upstream


@pytest.fixture(scope="module")
def upstream(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proc]:
    with running(start_mock_upstream(tmp_path_factory.mktemp("upstream"))) as proc:
        yield proc


@pytest.fixture(scope="module")
def e2e_tmp(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("e2e")


@pytest.fixture(scope="module")
def anthropic_upstream(e2e_tmp: Path) -> Iterator[Proc]:
    """tests/e2e/anthropic_mock.py, an Anthropic Messages API look-alike."""
    port = free_port()
    proc = _spawn([sys.executable, "-m", "tests.e2e.anthropic_mock", "--port", str(port)], {},
                  e2e_tmp / f"anthropic-{port}.log", f"http://127.0.0.1:{port}")
    with running(proc):
        _wait_http(proc, "/_stats")
        yield proc
