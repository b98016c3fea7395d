"""The session's fixtures come from ``tests.support.fixtures``; here only what applies to
every collected test."""

from __future__ import annotations

import pytest

pytest_plugins = ("tests.support.fixtures",)

# With pytest-xdist (`make test` runs two workers), each worker process starts its own stack
# and, when it needs one, its own control plane. Tests are handed out a group at a time:
# a module's tests stay together (its module-scoped fixtures, such as processors restarted
# with other settings, run once), and every module that uses the control plane shares one
# group, so only one worker pays for starting it.
CONTROL_PLANE_GROUP = "control-plane"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # A test that uses the stack is marked so, whichever way it reached the fixture.
    modules_on_the_cluster = set()
    for item in items:
        if "stack" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.stack)
        if "cluster" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.cluster)
            modules_on_the_cluster.add(item.nodeid.partition("::")[0])
    for item in items:
        module = item.nodeid.partition("::")[0]
        group = CONTROL_PLANE_GROUP if module in modules_on_the_cluster else module
        item.add_marker(pytest.mark.xdist_group(group))
