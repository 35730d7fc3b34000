"""Counters, latency histograms, spans and the per-operation DEBUG log line.

Every public storage operation runs inside :meth:`Telemetry.operation`, which times it
and records:

* in-process counters and a latency histogram per operation, read with
  ``SupabaseStorage.stats()`` (no dependency needed);
* when the ``opentelemetry`` API is installed (the conserver ships it), the same as
  OpenTelemetry metrics on the meter ``conserver_supabase`` and a span per operation
  (``conserver_supabase.<op>``) with the vCon uuid and the cache outcome as
  attributes. Without an SDK configured these are no-ops;
* one DEBUG line on the ``conserver_supabase.telemetry`` logger with the elapsed
  milliseconds and ``extra`` fields ``vcon_uuid``, ``op``, ``ms``, ``cache``.

The operation running in this thread is held in a context variable: :func:`note_subject`
names its vCon (only ever a checked uuid, given explicitly: nothing is guessed from the
arguments) and :func:`note_cache` records what the cache did, from wherever that is
known (the Redis guard, the storage policy).
"""

from __future__ import annotations

import bisect
import functools
import importlib
import logging
import os
import threading
import time
from collections.abc import Callable
from contextvars import ContextVar
from typing import Any, Final

__all__ = ["BUCKETS_MS", "Operation", "Telemetry", "note_cache", "note_subject", "observed"]

logger = logging.getLogger("conserver_supabase.telemetry")

#: Upper bounds (milliseconds) of the latency histogram buckets; the last is +inf.
BUCKETS_MS: Final = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000)

_EVENTS: Final = (
    "hits",
    "misses",
    "fills",
    "errors",
    "retries",
    "journaled",
    "feed_changes",
    "conflicts",
)


class Operation:
    """What the running operation reports: ``vcon_uuid`` (when only known once the
    document is read) and ``cache`` (hit, miss, written, ...)."""

    __slots__ = ("cache", "name", "vcon_uuid")

    def __init__(self, name: str, vcon_uuid: str | None) -> None:
        self.name = name
        self.vcon_uuid = vcon_uuid
        self.cache: str | None = None


#: The operation running in this thread (for the cache outcome of its span and log line).
_current: ContextVar[Operation | None] = ContextVar("conserver_supabase_operation", default=None)


def note_subject(vcon_uuid: str) -> None:
    """Name the vCon the running operation is about (a checked, canonical uuid)."""
    op = _current.get()
    if op is not None:
        op.vcon_uuid = vcon_uuid


def note_cache(outcome: str) -> None:
    """Record what the cache did for the running operation (hit, miss, written ...)."""
    op = _current.get()
    if op is not None:
        op.cache = outcome


class _Histogram:
    __slots__ = ("buckets", "count", "errors", "max_ms", "sum_ms")

    def __init__(self) -> None:
        self.count = 0
        self.errors = 0
        self.sum_ms = 0.0
        self.max_ms = 0.0
        self.buckets = [0] * (len(BUCKETS_MS) + 1)

    def add(self, ms: float, failed: bool) -> None:
        self.count += 1
        self.errors += failed
        self.sum_ms += ms
        self.max_ms = max(self.max_ms, ms)
        self.buckets[bisect.bisect_left(BUCKETS_MS, ms)] += 1

    def quantile(self, q: float) -> float | None:
        """The upper bound of the bucket holding the q-quantile (None: no calls, or
        beyond the last bound)."""
        if not self.count:
            return None
        rank = q * self.count
        seen = 0
        for bound, count in zip((*BUCKETS_MS, None), self.buckets, strict=True):
            seen += count
            if seen >= rank:
                return float(bound) if bound is not None else None
        return None

    def as_dict(self) -> dict[str, Any]:
        return {
            "count": self.count,
            "errors": self.errors,
            "mean_ms": round(self.sum_ms / self.count, 3) if self.count else None,
            "max_ms": round(self.max_ms, 3),
            "p50_ms_at_most": self.quantile(0.5),
            "p95_ms_at_most": self.quantile(0.95),
            "buckets_ms": {
                **{f"<={b}": n for b, n in zip(BUCKETS_MS, self.buckets, strict=False)},
                f">{BUCKETS_MS[-1]}": self.buckets[-1],
            },
        }


class Telemetry:
    """One per storage instance; thread-safe."""

    def __init__(self, circuit_state: Callable[[], str]) -> None:
        self._lock = threading.Lock()
        self._histograms: dict[str, _Histogram] = {}
        self._events = dict.fromkeys(_EVENTS, 0)
        self._circuit_state = circuit_state
        self._otel = _OpenTelemetry.create(circuit_state)

    def operation(self, name: str) -> _Timing:
        """Time one operation (a context manager yielding its :class:`Operation`);
        record it when it ends (raising or not). Its vCon is named with
        :func:`note_subject` once known."""
        return _Timing(self, name)

    def finished(self, op: Operation, ms: float, failed: bool, span: Any) -> None:
        """Record an operation :class:`_Timing` timed."""
        with self._lock:
            histogram = self._histograms.get(op.name)
            if histogram is None:
                histogram = self._histograms[op.name] = _Histogram()
            histogram.add(ms, failed)
        if self._otel:
            self._otel.record(op, ms, failed, span)
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug(
                "%s%s %s in %.1f ms%s",
                op.name,
                f" of vCon {op.vcon_uuid}" if op.vcon_uuid else "",
                "failed" if failed else "done",
                ms,
                f" (cache {op.cache})" if op.cache else "",
                extra={"vcon_uuid": op.vcon_uuid, "op": op.name, "ms": ms, "cache": op.cache},
            )

    def event(self, name: str, count: int = 1) -> None:
        """Count a cache hit/miss/fill/error, a retry or a journaled save."""
        with self._lock:
            self._events[name] += count
        if self._otel:
            self._otel.event(name, count)

    def events(self) -> dict[str, int]:
        with self._lock:
            return dict(self._events)

    def stats(self) -> dict[str, Any]:
        with self._lock:
            operations = {name: h.as_dict() for name, h in sorted(self._histograms.items())}
            events = dict(self._events)
        lookups = events["hits"] + events["misses"]
        return {
            "operations": operations,
            "cache": {
                "hits": events["hits"],
                "misses": events["misses"],
                "fills": events["fills"],
                "errors": events["errors"],
                "hit_ratio": round(events["hits"] / lookups, 4) if lookups else None,
            },
            "retries": events["retries"],
            "journaled": events["journaled"],
            "feed_changes": events["feed_changes"],
            "conflicts": events["conflicts"],
            "circuit": self._circuit_state(),
        }


class _OpenTelemetry:
    """The OpenTelemetry instruments, when the API is installed."""

    def __init__(self, trace: Any, metrics: Any, circuit_state: Callable[[], str]) -> None:
        from ._version import __version__

        self._trace = trace
        self._metrics = importlib.import_module("opentelemetry.metrics._internal")
        #: Providers named in the environment (read once, when the storage is made).
        self._named = {
            name: name in os.environ
            for name in ("OTEL_PYTHON_TRACER_PROVIDER", "OTEL_PYTHON_METER_PROVIDER")
        }
        self._tracer = trace.get_tracer("conserver_supabase", __version__)
        meter = metrics.get_meter("conserver_supabase", __version__)
        self._operations = meter.create_counter(
            "conserver_supabase.operations", unit="{operation}", description="storage operations"
        )
        self._duration = meter.create_histogram(
            "conserver_supabase.operation.duration",
            unit="ms",
            description="time of one storage operation",
        )
        self._events = meter.create_counter(
            "conserver_supabase.events",
            unit="{event}",
            description="cache hits, misses, fills and errors, retries, journaled saves",
        )
        states = {"closed": 0, "open": 1, "probing": 2}

        def observe(_options: Any) -> Any:
            from opentelemetry.metrics import Observation

            state = circuit_state()
            return [Observation(states.get(state, -1), {"state": state})]

        meter.create_observable_gauge(
            "conserver_supabase.redis.circuit",
            callbacks=[observe],
            description="Redis circuit breaker: 0 closed, 1 open, 2 probing",
        )

    @classmethod
    def create(cls, circuit_state: Callable[[], str]) -> _OpenTelemetry | None:
        try:
            from opentelemetry import metrics, trace
        except ImportError:
            return None
        return cls(trace, metrics, circuit_state)

    def tracing(self) -> bool:
        """Whether the host configured a tracer provider (an SDK). Until then the API's
        proxy only makes no-op spans, which cost about 0.08 of a cache hit: skip them.
        Checked on every call, so a provider set later is picked up."""
        named = self._named["OTEL_PYTHON_TRACER_PROVIDER"]
        if _unset(self._trace, "_TRACER_PROVIDER", named):
            return False
        return not isinstance(self._trace.get_tracer_provider(), self._trace.ProxyTracerProvider)

    def metering(self) -> bool:
        """Whether the host configured a meter provider; until then the instruments are
        the API's proxies and recording into them does nothing (checked on every call:
        the proxies bind to a provider set later)."""
        named = self._named["OTEL_PYTHON_METER_PROVIDER"]
        return not _unset(self._metrics, "_METER_PROVIDER", named)

    def span(self, name: str) -> Any:
        return self._tracer.start_as_current_span(
            f"conserver_supabase.{name}", record_exception=True
        )

    def record(self, op: Operation, ms: float, failed: bool, span: Any) -> None:
        if self.metering():
            outcome = "error" if failed else "ok"
            self._operations.add(1, {"op": op.name, "outcome": outcome})
            self._duration.record(ms, {"op": op.name, "outcome": outcome})
        if span is None:  # not tracing
            return
        if op.vcon_uuid is not None:
            span.set_attribute("vcon.uuid", op.vcon_uuid)
        if op.cache is not None:
            span.set_attribute("conserver_supabase.cache", op.cache)
        if failed:
            span.set_status(self._trace.Status(self._trace.StatusCode.ERROR))

    def event(self, name: str, count: int) -> None:
        if self.metering():
            self._events.add(count, {"event": name})


def _unset(module: Any, name: str, named: bool) -> bool:
    """Whether the OpenTelemetry API surely has no provider: its module global
    ``name`` (what ``get_tracer_provider`` / ``get_meter_provider`` read first) is
    ``None`` and the environment named none (``named``). A global the API no longer
    has answers ``False``: the public call decides. (A microsecond less per operation
    than the public call, which reads the environment each time: issue 18's cache hit.)"""
    return not named and getattr(module, name, False) is None


class _Timing:
    """:meth:`Telemetry.operation`: a class, not a generator, because it wraps every
    cache hit (a few microseconds each, issue 18)."""

    __slots__ = ("_span", "_started", "_telemetry", "_token", "op", "span")

    def __init__(self, telemetry: Telemetry, name: str) -> None:
        self._telemetry = telemetry
        self.op = Operation(name, None)

    def __enter__(self) -> Operation:
        self._started = time.perf_counter()
        otel = self._telemetry._otel
        self._span = otel.span(self.op.name) if otel is not None and otel.tracing() else None
        self.span = None if self._span is None else self._span.__enter__()
        self._token = _current.set(self.op)
        return self.op

    def __exit__(self, kind: Any, error: Any, traceback: Any) -> None:
        _current.reset(self._token)
        ms = (time.perf_counter() - self._started) * 1000
        try:
            self._telemetry.finished(self.op, ms, kind is not None, self.span)
        finally:
            if self._span is not None:
                self._span.__exit__(kind, error, traceback)


def observed[**P, R](name: str) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Time and record a public storage method as operation ``name`` (see telemetry).
    The method names its vCon itself, once the uuid is checked."""

    def decorate(method: Callable[P, R]) -> Callable[P, R]:
        @functools.wraps(method)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            telemetry: Telemetry = args[0]._telemetry  # type: ignore[attr-defined]
            with telemetry.operation(name):
                return method(*args, **kwargs)

        return wrapper

    return decorate
