"""Observability: storage.stats() (counters, latency histograms, circuit state), the
per-operation DEBUG line with its extra fields, and OpenTelemetry metrics and spans
through the SDK's in-memory exporters (in a subprocess, so the global providers do not
leak into other tests)."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conserver_supabase import DatabaseUnavailableError, InvalidVconError, SupabaseStorage
from conserver_supabase._telemetry import BUCKETS_MS
from conserver_supabase.testing import make_vcon

from ..support.postgrest_standin import PostgrestStandIn
from ..support.services import redis_client

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


def test_stats_count_operations_cache_outcomes_and_latencies(
    database_url: str, redis_json_url: str
) -> None:
    documents = [make_vcon(seed=i) for i in range(3)]
    with SupabaseStorage({"database_url": database_url, "redis_url": redis_json_url}) as store:
        for document in documents:
            store.save_vcon(document)
        first = documents[0]["uuid"]
        store.get_vcon(first)  # hit
        redis_client(redis_json_url).delete(f"vcon:{first}")
        store.get_vcon(first)  # miss, filled
        store.get_vcon(first, use_cache=False)
        store.exists(first)
        store.search(limit=5)
        store.delete_vcon(first)
        stats = store.stats()
    operations = stats["operations"]
    assert {name: o["count"] for name, o in operations.items()} == {
        "save": 3, "get": 3, "exists": 1, "search": 1, "delete": 1,
    }  # fmt: skip
    assert all(o["errors"] == 0 for o in operations.values())
    for o in operations.values():
        assert sum(o["buckets_ms"].values()) == o["count"]
        assert o["max_ms"] >= o["mean_ms"] > 0
        assert o["p50_ms_at_most"] in BUCKETS_MS
    assert stats["cache"] == {"hits": 1, "misses": 1, "fills": 1, "errors": 0, "hit_ratio": 0.5}
    assert (stats["retries"], stats["journaled"], stats["circuit"]) == (0, 0, "closed")


def test_retries_journaled_saves_and_failures_are_counted(
    database_url: str, redis_json_url: str
) -> None:
    with PostgrestStandIn(database_url, key="k") as server:
        options = {"url": server.url, "key": "k", "redis_url": redis_json_url}
        with SupabaseStorage({**options, "retry_deadline": 5}) as store:
            server.faults = ["503", "503"]
            store.save_vcon(make_vcon(seed=1))
            assert store.stats()["retries"] == 2
        with SupabaseStorage({**options, "retry_deadline": 0}) as store:
            server.faults = ["503"]
            with pytest.raises(DatabaseUnavailableError):
                store.save_vcon(make_vcon(seed=2))
            stats = store.stats()
    assert stats["journaled"] == 1
    assert (stats["operations"]["save"]["count"], stats["operations"]["save"]["errors"]) == (1, 1)


def test_the_circuit_state_is_reported(database_url: str, unreachable_redis_url: str) -> None:
    options = {"database_url": database_url, "redis_url": unreachable_redis_url}
    with SupabaseStorage({**options, "redis_cooldown": 60}) as store:
        for seed in range(3):
            store.save_vcon(make_vcon(seed=seed))
        stats = store.stats()
    assert stats["circuit"] == "open"
    assert stats["cache"]["errors"] == 3


def test_each_operation_logs_one_debug_line_with_extra_fields(
    database_url: str, redis_json_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    document = make_vcon(seed=1)
    with SupabaseStorage({"database_url": database_url, "redis_url": redis_json_url}) as store:
        store.save_vcon(document)
        caplog.set_level(logging.DEBUG, logger="conserver_supabase.telemetry")
        store.get_vcon(document["uuid"])
    (record,) = [r for r in caplog.records if r.name == "conserver_supabase.telemetry"]
    assert (record.op, record.vcon_uuid, record.cache) == ("get", document["uuid"], "hit")  # type: ignore[attr-defined]
    assert isinstance(record.ms, float)  # type: ignore[attr-defined]
    assert record.getMessage().startswith(f"get of vCon {document['uuid']} done in ")
    assert record.getMessage().endswith(" ms (cache hit)")


def test_no_vcon_body_reaches_the_debug_line_whatever_is_passed(
    database_url: str, redis_json_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Regression: the operation's subject was guessed from any string first argument,
    so ``save_vcon`` given JSON text logged the whole document as the uuid. The subject
    is only ever a validated uuid."""
    document = make_vcon(seed=2)
    document["dialog"][0]["body"] = "SECRET-BODY-TEXT"
    broken = {**document, "dialog": [{**document["dialog"][0], "encoding": "rot13"}]}
    with SupabaseStorage({"database_url": database_url, "redis_url": redis_json_url}) as store:
        caplog.set_level(logging.DEBUG, logger="conserver_supabase.telemetry")
        store.save_vcon(json.dumps(document))
        with pytest.raises(InvalidVconError):
            store.save_vcon(json.dumps(broken))
        with pytest.raises(InvalidVconError):
            store.get_vcon("SECRET-BODY-TEXT")
    records = [r for r in caplog.records if r.name == "conserver_supabase.telemetry"]
    assert [(r.op, r.vcon_uuid) for r in records] == [  # type: ignore[attr-defined]
        ("save", document["uuid"]),
        ("save", document["uuid"]),  # the uuid the document names, once it is checked
        ("get", None),
    ]
    for record in records:
        assert "SECRET-BODY-TEXT" not in record.getMessage()


OTEL_PROBE = """
import json, os, sys
from opentelemetry import metrics, trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

spans = InMemorySpanExporter()
provider = TracerProvider()
provider.add_span_processor(SimpleSpanProcessor(spans))
trace.set_tracer_provider(provider)
reader = InMemoryMetricReader()
metrics.set_meter_provider(MeterProvider(metric_readers=[reader]))

from conserver_supabase import SupabaseStorage
from conserver_supabase.testing import make_vcon

document = make_vcon(seed=7)
with SupabaseStorage({"database_url": os.environ["DB"], "redis_url": os.environ["RURL"]}) as s:
    s.save_vcon(document)
    s.get_vcon(document["uuid"])
    s.get_vcon("00000000-0000-4000-8000-000000000000")
points = {}
for rm in reader.get_metrics_data().resource_metrics:
    for sm in rm.scope_metrics:
        for metric in sm.metrics:
            for point in metric.data.data_points:
                key = metric.name + json.dumps(dict(point.attributes), sort_keys=True)
                points[key] = getattr(point, "value", None) or getattr(point, "count", None)
print(json.dumps({
    "uuid": document["uuid"],
    "spans": [{"name": s.name, "attributes": dict(s.attributes)}
              for s in spans.get_finished_spans()],
    "points": points,
}))
"""


def test_opentelemetry_metrics_and_spans(database_url: str, redis_json_url: str) -> None:
    result = subprocess.run(
        [sys.executable, "-c", OTEL_PROBE],
        capture_output=True, text=True, timeout=120, cwd=ROOT, check=False,
        env={**os.environ, "DB": database_url, "RURL": redis_json_url},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    seen = json.loads(result.stdout)
    uuid = seen["uuid"]
    assert seen["spans"] == [
        {"name": "conserver_supabase.save", "attributes": {"vcon.uuid": uuid,
                                                          "conserver_supabase.cache": "written"}},
        {"name": "conserver_supabase.get", "attributes": {"vcon.uuid": uuid,
                                                         "conserver_supabase.cache": "hit"}},
        {"name": "conserver_supabase.get",
         "attributes": {"vcon.uuid": "00000000-0000-4000-8000-000000000000",
                        "conserver_supabase.cache": "miss"}},
    ]  # fmt: skip
    points = seen["points"]
    assert points['conserver_supabase.operations{"op": "get", "outcome": "ok"}'] == 2
    assert points['conserver_supabase.operations{"op": "save", "outcome": "ok"}'] == 1
    assert points['conserver_supabase.operation.duration{"op": "get", "outcome": "ok"}'] == 2
    assert points['conserver_supabase.events{"event": "hits"}'] == 1
    assert points['conserver_supabase.events{"event": "misses"}'] == 1
    assert 'conserver_supabase.redis.circuit{"state": "closed"}' in points


def test_without_opentelemetry_everything_still_works(
    database_url: str, redis_json_url: str
) -> None:
    probe = (
        "import sys, os; sys.modules['opentelemetry'] = None\n"
        "from conserver_supabase import SupabaseStorage\n"
        "from conserver_supabase.testing import make_vcon\n"
        "s = SupabaseStorage({'database_url': os.environ['DB'], 'redis_url': os.environ['RURL']})\n"
        "d = make_vcon(seed=3); s.save_vcon(d); assert s.get_vcon(d['uuid']) == d\n"
        "print(s.stats()['operations']['get']['count']); s.close()\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, cwd=ROOT,
        env={**os.environ, "DB": database_url, "RURL": redis_json_url}, check=False,
    )  # fmt: skip
    assert (result.returncode, result.stdout.strip()) == (0, "1"), result.stderr


LATE_PROBE = """
import json, os
from opentelemetry import metrics, trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from conserver_supabase import SupabaseStorage
from conserver_supabase.testing import make_vcon

s = SupabaseStorage({"database_url": os.environ["DB"], "redis_url": os.environ["RURL"]})
s.get_vcon("00000000-0000-4000-8000-000000000000")  # no provider yet: no span made
spans = InMemorySpanExporter()
provider = TracerProvider()
provider.add_span_processor(SimpleSpanProcessor(spans))
trace.set_tracer_provider(provider)
reader = InMemoryMetricReader()
metrics.set_meter_provider(MeterProvider(metric_readers=[reader]))
s.save_vcon(make_vcon(seed=8))
counted = [
    (dict(point.attributes), point.value)
    for rm in reader.get_metrics_data().resource_metrics
    for sm in rm.scope_metrics
    for metric in sm.metrics if metric.name == "conserver_supabase.operations"
    for point in metric.data.data_points
]
print(json.dumps({"spans": [span.name for span in spans.get_finished_spans()],
                  "operations": counted}))
s.close()
"""


def test_a_tracer_provider_set_later_is_picked_up(database_url: str, redis_json_url: str) -> None:
    """Spans and metrics are skipped while no SDK is configured (they would be
    no-ops) and made as soon as the host sets a provider, without recreating the
    storage: the get before counts nowhere, the save after in both."""
    result = subprocess.run(
        [sys.executable, "-c", LATE_PROBE],
        capture_output=True, text=True, timeout=120, cwd=ROOT, check=False,
        env={**os.environ, "DB": database_url, "RURL": redis_json_url},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {
        "spans": ["conserver_supabase.save"],
        "operations": [[{"op": "save", "outcome": "ok"}, 1]],
    }
