"""The edge for the API tests: one ``conveyor api`` process on the session's stack."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest

from tests.api.edge import Account, Api, EdgeProcess
from tests.conftest import RunningStack


@pytest.fixture(scope="session")
def edge(stack: RunningStack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[EdgeProcess]:
    process = EdgeProcess(stack.urls, tmp_path_factory.mktemp("edge") / "edge.log")
    try:
        process.start()
        yield process
    finally:
        process.stop()


@pytest.fixture(scope="session")
async def api(edge: EdgeProcess) -> AsyncIterator[Api]:
    client = Api(edge)
    try:
        yield client
    finally:
        await client.close()


@pytest.fixture
async def account(api: Api) -> Account:
    return await api.new_account()


@pytest.fixture
async def admin(api: Api) -> Account:
    return await api.admin()
