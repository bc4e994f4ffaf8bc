"""Real processes for end-to-end tests: one mock upstream per module, gateways per test/module."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.procs import Proc, running, start_mock_upstream


@pytest.fixture(scope="module")
def upstream(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proc]:
    with running(start_mock_upstream(tmp_path_factory.mktemp("upstream"))) as proc:
        yield proc


@pytest.fixture(scope="module")
def e2e_tmp(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("e2e")
