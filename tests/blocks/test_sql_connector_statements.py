"""What the SQL connectors read from a statement, and how they clean an error."""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.schema import CreateTable, DropTable

from blocks.sql._redact import bound_values, error_detail, scrub_db_error
from blocks.sql._statements import as_statement, operation_name, result_key
from emitters._redact import MASK

TABLE = sa.Table("orders", sa.MetaData(), sa.Column("id", sa.Integer))


@pytest.mark.parametrize(
    ("statement", "verb"),
    [
        ("select 1", "SELECT"),
        ("  \n\tInsert into t values (1)", "INSERT"),
        ("-- nightly load\nUPDATE t SET n = 1", "UPDATE"),
        ("/* a\nblock */ delete from t", "DELETE"),
        ("(SELECT 1) UNION (SELECT 2)", "SELECT"),
        ("WITH x AS (SELECT 1) SELECT * FROM x", "WITH"),
        ("create table t (id int)", "CREATE"),
        ("", None),
        ("-- only a comment", None),
        (sa.text("merge into t using s on 1=1"), "MERGE"),
        (sa.select(TABLE), "SELECT"),
        (sa.insert(TABLE), "INSERT"),
        (sa.update(TABLE), "UPDATE"),
        (sa.delete(TABLE), "DELETE"),
        (sa.union(sa.select(TABLE), sa.select(TABLE)), "SELECT"),
        (CreateTable(TABLE), "CREATE"),
        (DropTable(TABLE), "DROP"),
        (42, None),
    ],
)
def test_operation_name_is_the_first_keyword(statement: Any, verb: str | None) -> None:
    """The verb is the first SQL keyword, upper case, past comments and brackets."""
    assert operation_name(statement) == verb


def test_as_statement_wraps_text_and_keeps_executables() -> None:
    """Text becomes a TextClause; an executable passes through; others fail."""
    assert isinstance(as_statement("SELECT 1"), sa.TextClause)
    query = sa.select(TABLE)
    assert as_statement(query) is query
    with pytest.raises(TypeError, match="not bytes"):
        as_statement(b"SELECT 1")  # type: ignore[arg-type]


def test_result_keys_tell_statements_and_parameters_apart() -> None:
    """Equal statements with equal parameters share a key; any difference splits."""
    key = result_key("SELECT :a", {"a": 1}, {})
    assert key == result_key("SELECT :a", {"a": 1}, {})
    assert key == result_key(sa.text("SELECT :a"), {"a": 1}, {})
    assert key != result_key("SELECT :a", {"a": 2}, {})
    assert key != result_key("SELECT :a", {"a": True}, {})
    assert key != result_key("SELECT :a", {"a": 1.0}, {})
    assert key != result_key("SELECT :a", {"a": 1}, {"stream_results": True})
    low = sa.select(TABLE).where(TABLE.c.id > 1)
    high = sa.select(TABLE).where(TABLE.c.id > 9)
    assert result_key(low, None, {}) != result_key(high, None, {})
    assert result_key(low, None, {}) == result_key(
        sa.select(TABLE).where(TABLE.c.id > 1), None, {}
    )
    unhashable = {"tags": ["a", "b"], "meta": {"k": {1, 2}}}
    assert result_key("SELECT :t", unhashable, {}) == result_key(
        "SELECT :t", {"tags": ["a", "b"], "meta": {"k": {2, 1}}}, {}
    )


def test_bound_values_reach_into_lists_and_mappings() -> None:
    """Every leaf is collected as text; None, booleans and bytes are left out."""
    values = bound_values(
        [{"a": "x", "b": 7, "c": None, "d": True}, {"a": ["y", 2.5], "e": b"raw"}]
    )
    assert values == ["x", "7", "y", "2.5"]


def test_values_are_masked_as_whole_tokens_only() -> None:
    """A bound 1 masks '1' and (1), not the 1 of errno 1062 or of 'r1'."""
    exc = ValueError("(1062, \"Duplicate entry '1' for key 'r1'\") Key (n)=(1)")
    scrub_db_error(exc, ["1"])
    assert str(exc) == (
        f"(1062, \"Duplicate entry '{MASK}' for key 'r1'\") Key (n)=({MASK})"
    )


@pytest.mark.parametrize(
    "message",
    [
        "Duplicate entry 'lit-9' for key 'PRIMARY'",
        "Incorrect integer value: 'lit-9' for column `n` at row 1",
        'invalid input syntax for type integer: "lit-9"',
        'invalid input value for enum mood: "lit-9"',
        'value "lit-9" is out of range for type integer',
        "invalid input for query argument $1: 'lit-9' (expected int)",
    ],
)
def test_values_the_driver_quotes_are_masked_even_as_literals(message: str) -> None:
    """Messages that quote a value lose it, whether it was bound or literal."""
    exc = ValueError(message)
    scrub_db_error(exc, [])
    assert "lit-9" not in str(exc)
    assert MASK in str(exc)


def test_a_statement_error_keeps_its_first_line_and_loses_the_statement() -> None:
    """SQLAlchemy's message shrinks to the driver's first line, values masked."""
    orig = ValueError('duplicate key "k"\nDETAIL:  Key (id)=(s3cr3t) already exists.')
    exc = sa.exc.IntegrityError(
        "INSERT INTO t VALUES ('s3cr3t')", {"id": "s3cr3t"}, orig, hide_parameters=True
    )
    scrub_db_error(exc, ["s3cr3t"])
    assert exc.statement is None
    assert str(exc).splitlines()[0] == '(builtins.ValueError) duplicate key "k"'
    assert "s3cr3t" not in str(exc)
    assert "s3cr3t" not in str(orig)
    assert "DETAIL" in str(orig)  # the driver's own exception keeps its detail


def test_error_detail_names_the_driver_error_and_its_code() -> None:
    """The DBAPI class and errno come from the wrapped driver exception."""

    class DriverError(Exception):
        pass

    exc = sa.exc.OperationalError(None, None, DriverError(1045, "Access denied"))
    detail = error_detail(exc)
    assert detail["dbapi_error"].endswith("DriverError")
    assert detail["db.response.status_code"] == "1045"
    assert error_detail(ValueError("not from a driver")) == {}
