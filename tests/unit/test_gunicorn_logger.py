"""app.logs.GunicornLogger skips Gunicorn's access-line work only while nothing would log it."""

from __future__ import annotations

import logging

from gunicorn.config import Config

from app.logs import GunicornLogger


def test_access_atoms_are_skipped_while_gunicorn_access_is_silenced() -> None:
    cfg = Config()
    cfg.set("logconfig_dict", {"version": 1, "disable_existing_loggers": False, "loggers": {
        "gunicorn.access": {"handlers": [], "level": "CRITICAL", "propagate": False}}})
    log = GunicornLogger(cfg)
    assert not log.access_log_enabled
    log.access(None, None, {}, None)  # returns before touching the (missing) request
    log.access_log.setLevel(logging.INFO)
    assert log.access_log_enabled


def test_no_logging_config_means_no_access_log_as_in_gunicorn() -> None:
    assert not GunicornLogger(Config()).access_log_enabled
