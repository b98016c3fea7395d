"""Clients of the session's edge (the ``edge`` fixture of tests/conftest.py) for the API tests."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.api.edge import Account, Api, EdgeProcess


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
