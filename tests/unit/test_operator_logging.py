"""The operator's log: kopf's per-object lines only from WARNING up (a success per handler
and per timer tick is noise; a retry or a failure is not)."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from mlcycle.__main__ import configure_logging

CONFIGURED = ("kopf.objects", "httpx")


@pytest.fixture
def root_at_info() -> Iterator[None]:
    """The root at INFO as in the operator (pytest's own is WARNING), restored after."""
    root = logging.getLogger()
    saved = root.level
    root.setLevel(logging.INFO)
    yield
    root.setLevel(saved)
    for name in CONFIGURED:
        logging.getLogger(name).setLevel(logging.NOTSET)


def test_kopf_s_successes_are_not_written_its_failures_are(root_at_info: None) -> None:
    configure_logging()
    kopf_objects = logging.getLogger("kopf.objects")
    assert not kopf_objects.isEnabledFor(logging.INFO)
    assert kopf_objects.isEnabledFor(logging.WARNING)
    assert not logging.getLogger("httpx").isEnabledFor(logging.INFO)
