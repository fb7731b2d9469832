"""Each test run works in server databases of its own, made for it and named by it."""

from __future__ import annotations

import os

import pytest
import sqlalchemy as sa


@pytest.mark.parametrize("fixture", ["postgres_url", "mysql_url"])
def test_the_server_url_names_this_runs_own_database(
    fixture: str, request: pytest.FixtureRequest
) -> None:
    """The URL's database is this process's, exists, and is what the variable says."""
    url = sa.make_url(request.getfixturevalue(fixture))
    assert (url.database or "").startswith(f"eventblocks_test_{os.getpid()}_")
    variable = {
        "postgres_url": "EVENTBLOCKS_TEST_POSTGRES_URL",
        "mysql_url": "EVENTBLOCKS_TEST_MYSQL_URL",
    }[fixture]
    assert sa.make_url(os.environ[variable]) == url
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            current = (
                "current_database()" if fixture == "postgres_url" else "DATABASE()"
            )
            assert (
                conn.execute(sa.text(f"SELECT {current}")).scalar_one() == url.database
            )
    finally:
        engine.dispose()
