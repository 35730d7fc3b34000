"""PostgREST's request syntax as the stand-in (postgrest_standin.py) reads it: paths,
horizontal filters, ``order``, ``select`` columns, ``Prefer``, and the HTTP status
PostgREST gives an error."""

from __future__ import annotations

import re
from typing import Any

from psycopg import sql

_NAME = r"[A-Za-z_][A-Za-z0-9_]*"
FUNCTION_PATH = re.compile(rf"^/rest/v1/rpc/({_NAME})$")
TABLE_PATH = re.compile(rf"^/rest/v1/({_NAME})$")
_IDENTIFIER = re.compile(rf"^{_NAME}$")
_RESERVED = {"select", "order", "limit", "offset", "on_conflict", "columns"}
_OPERATORS = {
    "eq": "=",
    "neq": "<>",
    "gt": ">",
    "gte": ">=",
    "lt": "<",
    "lte": "<=",
    "like": "LIKE",
    "ilike": "ILIKE",
}
_IS = {"null": "NULL", "true": "TRUE", "false": "FALSE", "unknown": "UNKNOWN"}

#: A response: status, JSON body (``EMPTY``: no body), extra headers.
Response = tuple[int, Any, dict[str, str]]
#: No body at all (201 or 204 under ``return=minimal``), unlike JSON ``null``.
EMPTY: Any = object()


class RequestError(Exception):
    """A request PostgREST refuses before any SQL runs (its ``PGRST`` errors)."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


def status(sqlstate: str) -> int:
    if sqlstate in ("23503", "23505"):
        return 409
    if sqlstate in ("42883", "42P01"):
        return 404
    if sqlstate == "42501":
        return 403
    if sqlstate.startswith("08") or sqlstate.startswith("57P"):
        return 503
    if sqlstate[:2] in ("22", "23") or sqlstate in ("P0001", "42703"):
        return 400
    return 500


def identifier(name: str) -> sql.Identifier:
    if not _IDENTIFIER.match(name):
        raise RequestError(400, "PGRST100", f"unsupported name {name!r} (stand-in)")
    return sql.Identifier(name)


def columns(names: str) -> sql.Composable:
    if names.strip() == "*":
        return sql.SQL("*")
    return sql.SQL(", ").join(identifier(name.strip()) for name in names.split(","))


def _filter(column: str, expression: str) -> tuple[sql.Composable, list[str]]:
    """``col=[not.]op.value`` -> an SQL condition and its parameters. Values go as
    untyped parameters, so PostgreSQL reads them as the column's type (PostgREST too)."""
    negate = expression.startswith("not.")
    if negate:
        expression = expression[4:]
    operator, dot, value = expression.partition(".")
    target = identifier(column)
    params: list[str] = []
    if not dot:
        raise RequestError(400, "PGRST100", f"failed to parse filter ({column}={expression})")
    if operator in _OPERATORS:
        if operator in ("like", "ilike"):
            value = value.replace("*", "%")
        condition = sql.SQL("{} {} %s").format(target, sql.SQL(_OPERATORS[operator]))
        params = [value]
    elif operator == "in" and value.startswith("(") and value.endswith(")"):
        params = [v.strip().strip('"') for v in value[1:-1].split(",") if v.strip()]
        if not params:
            return sql.SQL("false" if not negate else "true"), []
        holders = sql.SQL(", ").join(sql.Placeholder() * len(params))
        condition = sql.SQL("{} IN ({})").format(target, holders)
    elif operator == "is" and value.lower() in _IS:
        condition = sql.SQL("{} IS {}").format(target, sql.SQL(_IS[value.lower()]))
    else:
        raise RequestError(400, "PGRST100", f"unsupported filter ({column}={expression})")
    if negate:
        condition = sql.SQL("NOT ({})").format(condition)
    return condition, params


def where(query: list[tuple[str, str]]) -> tuple[sql.Composable, list[str]]:
    conditions: list[sql.Composable] = []
    params: list[str] = []
    for key, value in query:
        if key in _RESERVED:
            continue
        if key in ("or", "and", "not.or", "not.and"):
            raise RequestError(400, "PGRST100", f"'{key}' filters are not supported (stand-in)")
        condition, values = _filter(key, value)
        conditions.append(condition)
        params += values
    if not conditions:
        return sql.SQL(""), []
    return sql.SQL(" WHERE ") + sql.SQL(" AND ").join(conditions), params


def order(spec: str) -> sql.Composable:
    terms: list[sql.Composable] = []
    for term in spec.split(","):
        column, *modifiers = term.strip().split(".")
        parts: list[sql.Composable] = [identifier(column)]
        for modifier in modifiers:
            words = {"asc": "ASC", "desc": "DESC", "nullsfirst": "NULLS FIRST",
                     "nullslast": "NULLS LAST"}  # fmt: skip
            if modifier not in words:
                raise RequestError(400, "PGRST100", f"failed to parse order ({spec})")
            parts.append(sql.SQL(words[modifier]))
        terms.append(sql.SQL(" ").join(parts))
    return sql.SQL(" ORDER BY ") + sql.SQL(", ").join(terms)


def count(query: dict[str, str], name: str) -> int | None:
    if name not in query:
        return None
    try:
        return max(0, int(query[name]))
    except ValueError:
        raise RequestError(400, "PGRST100", f"failed to parse {name}") from None


def prefer(headers: Any) -> set[str]:
    return {p.strip() for p in (headers.get("Prefer") or "").split(",") if p.strip()}
