"""The session's fixtures come from ``tests.support.fixtures``; here only what applies to
every collected test."""

from __future__ import annotations

from typing import Any

import pytest

pytest_plugins = ("tests.support.fixtures",)

# `make test` runs the tests on two pytest-xdist workers, each with a stack of its own (and a
# control plane when it needs one). The tests are handed out a group at a time: a module's
# tests stay together (its module-scoped fixtures, such as processors restarted with other
# settings, run once), and the folders below are one group each, so that only one worker
# starts the control plane and only one builds the web app and launches Chromium.
SHARED_FOLDERS = ("tests/operator/", "tests/manifests/", "tests/web/")


def handout_group(nodeid: str) -> str:
    """The group a test is handed out with: its folder's when shared, else its module's."""
    module = nodeid.partition("::")[0]
    return next((folder for folder in SHARED_FOLDERS if module.startswith(folder)), module)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # A test that uses the stack is marked so, whichever way it reached the fixture.
    for item in items:
        if "stack" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.stack)
        if "cluster" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.cluster)


@pytest.hookimpl(tryfirst=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    # xdist's own scopes are modules or classes (`--dist loadscope`); these are the groups
    # above. (Its `xdist_group` marks are not used: they rewrite node ids in a way pytest 9
    # no longer honours.)
    from xdist.scheduler import LoadScopeScheduling

    class ByTestGroup(LoadScopeScheduling):  # type: ignore[misc]
        def _split_scope(self, nodeid: str) -> str:
            return handout_group(nodeid)

    return ByTestGroup(config, log)
