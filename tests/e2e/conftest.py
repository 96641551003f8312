"""Ordering of the end-to-end tests: the credentials sweep runs after every other test, so it
searches what the whole run left behind."""

from __future__ import annotations

import pytest

LAST = "test_credentials.py"


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    items.sort(key=lambda item: item.path.name == LAST)  # stable: the rest keep their order
