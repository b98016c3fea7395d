"""The session's fixtures come from ``tests.support.fixtures``; here only what applies to
every collected test."""

from __future__ import annotations

import pytest

pytest_plugins = ("tests.support.fixtures",)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # A test that uses the stack is marked so, whichever way it reached the fixture.
    for item in items:
        if "stack" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.stack)
        if "cluster" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.cluster)
