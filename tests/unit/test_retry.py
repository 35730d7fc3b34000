"""Retrying transient database failures: backoff with jitter within one deadline,
rejections never retried (a fake clock, no server)."""

from __future__ import annotations

from typing import Any

import pytest

from conserver_supabase import (
    DatabaseRejectedError,
    DatabaseUnavailableError,
    InvalidVconError,
)
from conserver_supabase._retry import call_with_retry


def unavailable() -> DatabaseUnavailableError:
    return DatabaseUnavailableError("down", operation="save")


class FakeTime:
    def __init__(self) -> None:
        self.now = 0.0
        self.pauses: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.pauses.append(seconds)
        self.now += seconds


def failing(times: int, error: Exception, result: Any = "done") -> Any:
    calls = {"n": 0}

    def call() -> Any:
        calls["n"] += 1
        if calls["n"] <= times:
            raise error
        return result

    call.calls = calls  # type: ignore[attr-defined]
    return call


class TestPolicy:
    def test_transient_failures_are_retried_with_growing_jittered_pauses(self) -> None:
        fake = FakeTime()
        call = failing(4, unavailable())
        result = call_with_retry(
            call, deadline=10, operation="save", sleep=fake.sleep, clock=fake.clock,
            jitter=lambda: 1.0,
        )  # fmt: skip
        assert result == "done"
        assert fake.pauses == [0.1, 0.2, 0.4, 0.8]

    def test_jitter_keeps_each_pause_between_half_and_all(self) -> None:
        fake = FakeTime()
        call_with_retry(
            failing(3, unavailable()), deadline=10, operation="save", sleep=fake.sleep,
            clock=fake.clock, jitter=lambda: 0.0,
        )  # fmt: skip
        assert fake.pauses == [0.05, 0.1, 0.2]

    def test_the_deadline_bounds_the_whole_call(self) -> None:
        fake = FakeTime()
        with pytest.raises(DatabaseUnavailableError) as caught:
            call_with_retry(
                failing(1000, unavailable()), deadline=3, operation="save", sleep=fake.sleep,
                clock=fake.clock, jitter=lambda: 1.0,
            )  # fmt: skip
        assert fake.now <= 3
        assert caught.value.attempts == len(fake.pauses) + 1
        assert any("gave up after" in note for note in caught.value.__notes__)

    @pytest.mark.parametrize(
        "error",
        [
            DatabaseRejectedError("no", operation="save", code="42501"),
            InvalidVconError("u", "dialog", "bad"),
        ],
    )
    def test_rejections_are_never_retried(self, error: Exception) -> None:
        fake = FakeTime()
        call = failing(1, error)
        with pytest.raises(type(error)):
            call_with_retry(call, deadline=10, operation="save", sleep=fake.sleep)
        assert call.calls["n"] == 1

    def test_deadline_zero_turns_retrying_off(self) -> None:
        call = failing(1, unavailable())
        with pytest.raises(DatabaseUnavailableError):
            call_with_retry(call, deadline=0, operation="save")
        assert call.calls["n"] == 1
