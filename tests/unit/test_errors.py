"""The exception tree and the one translation boundary."""

from __future__ import annotations

import types
from typing import Any

import httpx
import psycopg
import pytest
from postgrest.exceptions import APIError

from conserver_supabase import _errors as errors
from conserver_supabase._database._errors import database_errors
from conserver_supabase._errors import (
    CacheError,
    ChainPushError,
    ConfigurationError,
    ConserverSupabaseError,
    DatabaseError,
    DatabaseRejectedError,
    DatabaseUnavailableError,
    InvalidVconError,
    VconNotFoundError,
)

U = "018f6d2e-8a4b-7c3d-9e5f-0123456789ab"


class TestTree:
    def test_everything_derives_from_one_root(self) -> None:
        for name in errors.__all__:
            assert issubclass(getattr(errors, name), ConserverSupabaseError), name

    def test_standard_bases_for_callers_that_catch_broadly(self) -> None:
        assert issubclass(ConfigurationError, ValueError)
        assert issubclass(InvalidVconError, ValueError)
        assert issubclass(VconNotFoundError, LookupError)
        assert issubclass(DatabaseUnavailableError, DatabaseError)
        assert issubclass(DatabaseRejectedError, DatabaseError)

    def test_messages_name_the_vcon(self) -> None:
        assert str(InvalidVconError(U, "dialog[0].type", "bad")) == (
            f"invalid vCon {U}: dialog[0].type: bad"
        )
        assert U in str(VconNotFoundError(U))
        error = ChainPushError(U, ["ingress", "audit"], "connection refused")
        assert U in str(error)
        assert "ingress, audit" in str(error)
        assert error.lists == ("ingress", "audit")
        assert CacheError("x", operation="get", vcon_uuid=U).vcon_uuid == U

    def test_tree_is_drawn_in_the_docstring(self) -> None:
        assert errors.__doc__ is not None
        for name in errors.__all__:
            assert name in errors.__doc__, name


def translate(exc: BaseException, operation: str = "save") -> BaseException:
    with pytest.raises(ConserverSupabaseError) as caught, database_errors(operation, U):
        raise exc
    assert caught.value.__cause__ is exc
    return caught.value


class TestBoundary:
    @pytest.mark.parametrize(
        "exc",
        [
            psycopg.OperationalError("connection refused"),
            psycopg.errors.AdminShutdown("terminating connection"),
            APIError(
                {"code": "PGRST001", "message": "no connection", "details": None, "hint": None}
            ),
            APIError({"code": "503", "message": "unavailable", "details": None, "hint": None}),
            httpx.ConnectError("refused"),
            httpx.ReadTimeout("slow"),
        ],
        ids=lambda e: type(e).__name__ + ":" + str(getattr(e, "code", "") or ""),
    )
    def test_transient_failures_are_unavailable(self, exc: BaseException) -> None:
        error = translate(exc)
        assert type(error) is DatabaseUnavailableError
        assert isinstance(error, DatabaseError)
        assert error.operation == "save"
        assert error.vcon_uuid == U
        assert f"save of vCon {U} failed: database unavailable" in str(error)

    @pytest.mark.parametrize(
        ("exc", "hint"),
        [
            (psycopg.errors.SerializationFailure("could not serialize"), "changed the same rows"),
            (psycopg.errors.DeadlockDetected("deadlock detected"), "a deadlock with another"),
            (psycopg.errors.LockNotAvailable("lock timeout"), "a lock held by another"),
            (psycopg.errors.QueryCanceled("statement timeout"), "did not finish within"),
        ],
        ids=lambda e: type(e).__name__ if isinstance(e, BaseException) else "",
    )
    def test_contention_is_transient_but_not_an_outage(self, exc: BaseException, hint: str) -> None:
        # Another transaction's locks, or a statement past its timeout: retried (and a
        # save journaled) like an outage, but the message says the database is busy.
        error = translate(exc)
        assert type(error) is DatabaseUnavailableError
        assert f"save of vCon {U} failed: database busy" in str(error)
        assert "unavailable" not in str(error)
        assert hint in str(error)

    @pytest.mark.parametrize(
        ("exc", "hint"),
        [
            (psycopg.errors.UniqueViolation("duplicate key value"), None),
            (psycopg.errors.UndefinedFunction("function does not exist"), "migrate"),
            (psycopg.errors.InsufficientPrivilege("permission denied"), "service-role"),
            (
                APIError(
                    {"code": "PGRST202", "message": "not found", "details": None, "hint": None}
                ),
                "migrate",
            ),
            (
                APIError({"code": "42501", "message": "denied", "details": None, "hint": None}),
                "service-role",
            ),
            (APIError({"code": "400", "message": "bad", "details": None, "hint": None}), None),
        ],
    )
    def test_rejections_are_never_transient(self, exc: BaseException, hint: str | None) -> None:
        error = translate(exc)
        assert type(error) is DatabaseRejectedError
        if hint:
            assert hint in str(error)

    @pytest.mark.parametrize(
        ("exc", "code"),
        [
            (psycopg.errors.CheckViolation("violates check constraint"), "23514"),
            (psycopg.errors.NotNullViolation("null value in column"), "23502"),
            (psycopg.errors.InvalidDatetimeFormat("invalid input syntax"), "22007"),
            (psycopg.errors.NumericValueOutOfRange("out of range for type real"), "22003"),
            (
                APIError(
                    {"code": "22008", "message": "out of range", "details": None, "hint": None}
                ),
                "22008",
            ),
        ],
    )
    @pytest.mark.parametrize("operation", ["save", "save_many"])
    def test_a_save_refused_for_its_data_is_an_invalid_vcon(
        self, exc: BaseException, code: str, operation: str
    ) -> None:
        """Not a DatabaseError: neither retried nor journaled (the data will not pass
        later), with the SQLSTATE; no field is named without the table and column."""
        error = translate(exc, operation)
        assert type(error) is InvalidVconError
        assert error.code == code
        assert error.field == "(document)"
        assert "the database refused it" in str(error)

    @pytest.mark.parametrize(
        ("table", "column", "constraint", "field"),
        [
            ("dialog", None, "dialog_type_check", "dialog[].type"),
            ("attachments", None, "attachments_mimetype_check", "attachments[].mediatype"),
            ("dialog", None, "dialog_check", "(document)"),  # a CHECK over several columns
            ("analysis", "vendor", None, "analysis[].vendor"),  # NOT NULL names the column
            ("vcons", "subject", None, "subject"),
            (None, None, None, "(document)"),
        ],
    )
    def test_the_field_is_what_the_database_names(
        self, table: str | None, column: str | None, constraint: str | None, field: str
    ) -> None:
        class Refused(psycopg.errors.CheckViolation):
            @property
            def diag(self) -> Any:
                return types.SimpleNamespace(
                    message_primary="refused",
                    message_detail=None,
                    table_name=table,
                    column_name=column,
                    constraint_name=constraint,
                )

        error = translate(Refused("refused"))
        assert isinstance(error, InvalidVconError)
        assert error.field == field

    def test_the_same_states_elsewhere_are_rejections(self) -> None:
        error = translate(psycopg.errors.CheckViolation("violates check constraint"), "delete")
        assert type(error) is DatabaseRejectedError

    def test_sql_guard_becomes_invalid_vcon(self) -> None:
        exc = APIError(
            {
                "code": "22023",
                "message": "invalid vCon x: dialog: must be an array",
                "details": "dialog",
                "hint": None,
            }
        )
        error = translate(exc)
        assert isinstance(error, InvalidVconError)
        assert error.field == "dialog"
        assert error.vcon_uuid == U

    def test_our_own_errors_and_foreign_bugs_pass_through(self) -> None:
        with pytest.raises(InvalidVconError), database_errors("save", U):
            raise InvalidVconError(U, "uuid", "bad")
        with pytest.raises(KeyError), database_errors("save", U):
            raise KeyError("a bug of ours stays a bug")
