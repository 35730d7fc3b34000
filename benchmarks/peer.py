"""Our writes against vcon-server's own ``postgres`` storage and two floors, side by side
in one run (issue 18): single saves of a standard vCon and of one with a 1 MiB inline
recording, and bulk ingest of ``--count`` standard vCons.

    python benchmarks/peer.py [--repeat 200] [--count 10000] [--batches 10 100 500 1000]
                              [--chunk 1000] [--json FILE]

One embedded PostgreSQL (each contender in a database of its own, the ones with our
tables copied from one migrated template) and one embedded Redis with RedisJSON.

The peer is vcon-server's ``common/storage/postgres`` access pattern, reproduced from its
source with our own SQL: one table ``vcons`` (id uuid primary key, vcon text, uuid,
created_at, updated_at, subject, vcon_json jsonb) created if it does not exist, and a
save is one ``INSERT ... ON CONFLICT (id) DO UPDATE`` of those columns for one vCon.
Its ``save()`` opens a connection, runs ``CREATE TABLE IF NOT EXISTS``, the INSERT and
closes the connection on every call (peewee in autocommit, each statement its own
transaction): "peer, as its save() runs". "peer, INSERT alone" is that INSERT on a kept
connection (the peer at its best). It has no bulk path (its conserver loops over saves):
bulk is the INSERT alone in a loop. Not counted for the peer: the Redis read of the vCon
its chain does before (``VconRedis.get_vcon``) and its ``Vcon`` object.

The floors take the client's serialization out (their payload is built before the
clock starts), so they are what PostgreSQL takes:

* single-INSERT floor: one ``INSERT`` of the jsonb document into a table (uuid primary
  key, jsonb), no conflict clause;
* floor (a), COPY documents: ``COPY`` of the documents into that one jsonb table (what
  the peer writes, as fast as PostgreSQL takes it);
* floor (b), COPY rows: ``COPY`` of the rows our write produces (vcons, parties, dialog,
  analysis, attachments, conserver_vcon_documents; computed once by our own
  ``conserver_vcon_save_many`` in a scratch database and copied out) into a fresh
  migrated database, with its indexes and triggers, in one transaction with
  ``conserver_supabase.writing = on`` as our write runs (the change-feed triggers skip
  the row tables and the document trigger records each save): the limit for what we
  write.

Ours: ``SupabaseStorage.save_vcon`` / ``save_many`` over psycopg with the Redis cache,
and ``conserver_vcon_save`` alone (the text form, as the storage sends it; no Redis).

After the bulk load, the bytes on disk per vCon of each database's tables (indexes and
TOAST included), against the vCon's JSON text.

Single saves take turns call by call (the order rotates each call; the 1 MiB case runs
a quarter of ``--repeat``). Bulk ingest writes ``--count`` vCons into each contender's
database in chunks of ``--chunk``, the contenders taking turns chunk by chunk, so each
database grows to ``--count`` and drift of the machine touches all alike. Quote the
ratios: absolute times depend on the machine.
"""

from __future__ import annotations

import io
import statistics
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import psycopg  # noqa: E402
from psycopg.types.json import Jsonb  # noqa: E402

from benchmarks._report import command_line, report  # noqa: E402
from benchmarks.cache_hit import standard_vcon  # noqa: E402
from benchmarks.exact_text import vcon as kind_vcon  # noqa: E402
from conserver_supabase import SupabaseStorage  # noqa: E402
from conserver_supabase import _migrations as migrations  # noqa: E402
from conserver_supabase._documents import dumps  # noqa: E402
from conserver_supabase.testing import EmbeddedPostgres, EmbeddedRedis  # noqa: E402

#: The peer's table, as peewee creates its model (UUIDField, TextField, DateTimeField,
#: BinaryJSONField; the fields without null=True are NOT NULL).
PEER_TABLE = """
CREATE TABLE IF NOT EXISTS vcons (
    id uuid NOT NULL PRIMARY KEY,
    vcon text NOT NULL,
    uuid uuid NOT NULL,
    created_at timestamp NOT NULL,
    updated_at timestamp,
    subject text,
    vcon_json jsonb
)
"""
#: The peer's upsert: every column, on conflict of the primary key every column again.
PEER_SAVE = """
INSERT INTO vcons (id, uuid, vcon, created_at, updated_at, subject, vcon_json)
VALUES (%(id)s, %(uuid)s, %(vcon)s, %(created_at)s, %(updated_at)s, %(subject)s, %(vcon_json)s)
ON CONFLICT (id) DO UPDATE SET
    id = %(id)s, uuid = %(uuid)s, vcon = %(vcon)s, created_at = %(created_at)s,
    updated_at = %(updated_at)s, subject = %(subject)s, vcon_json = %(vcon_json)s
"""
FLOOR_TABLE = "CREATE TABLE documents (uuid uuid PRIMARY KEY, document jsonb NOT NULL)"
FLOOR_INSERT = "INSERT INTO documents (uuid, document) VALUES (%s, %s::jsonb)"
#: What our write fills, parents first (the children reference vcons), and the column
#: naming each row's vCon.
OUR_TABLES = [
    ("vcons", "id"),
    ("parties", "vcon_id"),
    ("dialog", "vcon_id"),
    ("analysis", "vcon_id"),
    ("attachments", "vcon_id"),
    ("conserver_vcon_documents", "uuid"),
]
SINGLE = ["ours, save_vcon", "ours, conserver_vcon_save", "peer, as its save() runs",
          "peer, INSERT alone", "single-INSERT floor"]  # fmt: skip
FLOOR_A = "floor (a): COPY documents"
FLOOR_B = "floor (b): COPY rows"


def peer_row(document: dict[str, Any]) -> dict[str, Any]:
    """The peer's columns for one vCon (its ``vcon_data``)."""
    return {
        "id": document["uuid"],
        "uuid": document["uuid"],
        "vcon": document.get("vcon", "0.4.0"),
        "created_at": document["created_at"],
        "updated_at": datetime.now(),
        "subject": document.get("subject"),
        "vcon_json": Jsonb(document),
    }


def batches(items: list[Any], size: int) -> Iterator[list[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def quantiles(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {
        "p50_ms": round(statistics.median(ordered) * 1000, 3),
        "p95_ms": round(ordered[min(len(ordered) - 1, int(len(ordered) * 0.95))] * 1000, 3),
    }


def copy_text(rows: list[tuple[Any, ...]]) -> bytes:
    """COPY text format of (uuid, json text) rows."""
    out = io.StringIO()
    for vcon_uuid, text in rows:
        # JSON text holds no raw control character: only the backslash needs escaping.
        out.write(f"{vcon_uuid}\t{text.replace(chr(92), chr(92) * 2)}\n")
    return out.getvalue().encode("utf-8")


class Cluster:
    """Databases on one server: a migrated template and copies of it."""

    def __init__(self, admin_url: str, prefix: str = "bench_peer") -> None:
        from tests.support.services import with_database

        self.admin_url = admin_url
        self.with_database = with_database
        self.made: list[str] = []
        self.template_name = f"{prefix}_template"
        migrations.apply(self.create(self.template_name))

    def create(self, name: str, template: str | None = None) -> str:
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            clause = f' TEMPLATE "{template}"' if template else ""
            conn.execute(f'CREATE DATABASE "{name}"{clause}')
        self.made.append(name)
        return str(self.with_database(self.admin_url, name))

    def copy(self, name: str) -> str:
        return self.create(name, self.template_name)

    def drop_all(self) -> None:
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            for name in reversed(self.made):
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def rows_of(scratch_url: str, documents: list[dict[str, Any]], chunk: int) -> list[bytes]:
    """Per table, per chunk of ``documents``: the COPY text of the rows our
    ``conserver_vcon_save_many`` writes for them (saved once into ``scratch_url``)."""
    out: list[bytes] = []
    with psycopg.connect(scratch_url, autocommit=True) as conn:
        for part in batches(documents, 500):
            texts = Jsonb([dumps(d) for d in part])
            conn.execute("SELECT conserver_vcon_save_many(%s, NULL, NULL)", [texts])
        columns = {
            table: [
                name
                for (name,) in conn.execute(
                    "SELECT column_name FROM information_schema.columns WHERE table_schema ="
                    " current_schema() AND table_name = %s AND is_generated = 'NEVER'"
                    " ORDER BY ordinal_position",
                    [table],
                )
            ]
            for table, _ in OUR_TABLES
        }
        for part in batches(documents, chunk):
            uuids = [d["uuid"] for d in part]
            for table, key in OUR_TABLES:
                names = ", ".join(columns[table])
                data = bytearray()
                # Names from OUR_TABLES and the catalog, never from input.
                where = f"{key} = ANY(%s::uuid[])"
                query = f"COPY (SELECT {names} FROM {table} WHERE {where}) TO STDOUT"  # noqa: S608
                with conn.cursor().copy(query, [uuids]) as copy:
                    for block in copy:
                        data += block
                out.append(f"COPY {table} ({names}) FROM STDIN".encode() + b"\0" + bytes(data))
    return out


def copy_rows(conn: Any, payloads: list[bytes]) -> None:
    """COPY each table's rows (payloads of :func:`rows_of`) in one transaction."""
    with conn.transaction():
        for payload in payloads:
            statement, data = payload.split(b"\0", 1)
            with conn.cursor().copy(statement.decode()) as copy:
                copy.write(data)


def run(
    admin_url: str,
    redis_url: str,
    repeat: int = 200,
    count: int = 10_000,
    batch_sizes: tuple[int, ...] = (10, 100, 500, 1000),
    chunk: int = 1000,
) -> dict[str, Any]:
    if any(chunk % size for size in batch_sizes) or count % chunk:
        raise SystemExit("--chunk must be a multiple of every batch size and divide --count")
    cluster = Cluster(admin_url)
    conns: list[Any] = []
    stores: list[SupabaseStorage] = []
    try:
        results = _run(cluster, redis_url, repeat, count, batch_sizes, chunk, conns, stores)
    finally:
        for store in stores:
            store.close()
        for conn in conns:
            conn.close()
        cluster.drop_all()
    return results


def _run(
    cluster: Cluster,
    redis_url: str,
    repeat: int,
    count: int,
    batch_sizes: tuple[int, ...],
    chunk: int,
    conns: list[Any],
    stores: list[SupabaseStorage],
) -> dict[str, Any]:
    def connect(url: str, **kwargs: Any) -> Any:
        conn = psycopg.connect(url, autocommit=True, **kwargs)
        conns.append(conn)
        return conn

    def storage(url: str) -> SupabaseStorage:
        # A Redis database of its own per store: the bulk stores save the same uuids.
        own = f"{redis_url.rsplit('/', 1)[0]}/{len(stores) + 1}"
        store = SupabaseStorage({"database_url": url, "redis_url": own})
        stores.append(store)
        return store

    peer_url = cluster.create("bench_peer_vcon_server")
    floor_url = cluster.create("bench_peer_floor")
    ours = storage(cluster.copy("bench_peer_ours_storage"))
    ours_sql = connect(cluster.copy("bench_peer_ours_sql"))
    peer = connect(peer_url)
    peer.execute(PEER_TABLE)
    floor = connect(floor_url)
    floor.execute(FLOOR_TABLE)

    def peer_save_as_shipped(document: dict[str, Any]) -> None:
        with psycopg.connect(peer_url, autocommit=True) as conn:
            conn.execute(PEER_TABLE)
            conn.execute(PEER_SAVE, peer_row(document))

    contenders: dict[str, Callable[[dict[str, Any], str], Any]] = {
        "ours, save_vcon": lambda d, _: ours.save_vcon(d),
        "ours, conserver_vcon_save": lambda d, _: ours_sql.execute(
            "SELECT conserver_vcon_save(%s, NULL, '{}')", [Jsonb(dumps(d))]
        ).fetchone(),
        "peer, as its save() runs": lambda d, _: peer_save_as_shipped(d),
        "peer, INSERT alone": lambda d, _: peer.execute(PEER_SAVE, peer_row(d)),
        "single-INSERT floor": lambda d, text: floor.execute(FLOOR_INSERT, [d["uuid"], text]),
    }
    single = {kind: _singles(contenders, kind, repeat) for kind in ("standard", "1 MiB recording")}
    bulk, text_bytes = _bulk(cluster, storage, connect, count, batch_sizes, chunk)
    version = peer.execute("SHOW server_version").fetchone()
    return {
        "run": {
            "repeat": repeat,
            "count": count,
            "batches": list(batch_sizes),
            "chunk": chunk,
            "postgres_version": version[0] if version else None,
            "document_text_bytes": text_bytes,
        },
        "single": single,
        "bulk": bulk,
    }


def _singles(
    contenders: dict[str, Callable[[dict[str, Any], str], Any]], kind: str, repeat: int
) -> dict[str, Any]:
    """Single saves of ``kind``, the contenders taking turns call by call; p50/p95 and
    their ratios to the peer and the floor."""
    times: dict[str, list[float]] = {name: [] for name in contenders}
    runs = repeat if kind == "standard" else max(5, repeat // 4)
    for i in range(-3, runs):  # three warm-up rounds, not counted
        order = list(contenders)
        shift = i % len(order)
        for name in order[shift:] + order[:shift]:
            document = kind_vcon(kind, i)
            text = dumps(document)  # the floor's payload, built before the clock
            started = time.perf_counter()
            contenders[name](document, text)
            if i >= 0:
                times[name].append(time.perf_counter() - started)
    found = {name: quantiles(values) for name, values in times.items()}
    bases = {"peer": found["peer, as its save() runs"],
             "peer_insert": found["peer, INSERT alone"],
             "floor": found["single-INSERT floor"]}  # fmt: skip
    for figures in found.values():
        for base, of in bases.items():
            for q in ("p50", "p95"):
                figures[f"x_{base}_{q}"] = round(figures[f"{q}_ms"] / of[f"{q}_ms"], 3)
    return {"saves": runs, "contenders": found}


def _interleaved(cases: dict[str, Callable[[int], None]], rounds: int) -> dict[str, float]:
    """Seconds each case took over ``rounds`` rounds, the cases taking turns."""
    seconds = dict.fromkeys(cases, 0.0)
    for k in range(rounds):
        order = list(cases)
        shift = k % len(order)
        for name in order[shift:] + order[:shift]:
            started = time.perf_counter()
            cases[name](k)
            seconds[name] += time.perf_counter() - started
    return seconds


def _bulk(
    cluster: Cluster,
    storage: Callable[[str], SupabaseStorage],
    connect: Callable[..., Any],
    count: int,
    batch_sizes: tuple[int, ...],
    chunk: int,
) -> tuple[dict[str, Any], int]:
    documents = []
    for index in range(count):
        document = standard_vcon(seed=index)
        document["uuid"] = str(uuid.UUID(int=index + 1, version=4))
        documents.append(document)
    chunks = list(batches(documents, chunk))
    # Floor (b)'s payload: the rows our write produces, per chunk, per table.
    row_copies = rows_of(cluster.copy("bench_peer_scratch"), documents, chunk)
    per_chunk = len(OUR_TABLES)
    doc_copies = [copy_text([(d["uuid"], dumps(d)) for d in part]) for part in chunks]

    urls = {size: cluster.copy(f"bench_peer_bulk_{size}") for size in batch_sizes}
    stores = {size: storage(url) for size, url in urls.items()}
    peer = connect(cluster.create("bench_peer_bulk_peer"))
    peer.execute(PEER_TABLE)
    floor_a = connect(cluster.create("bench_peer_bulk_floor_a"))
    floor_a.execute(FLOOR_TABLE)
    # Our write's setting for the whole session: each COPY is one of our statements.
    floor_b = connect(
        cluster.copy("bench_peer_bulk_floor_b"), options="-c conserver_supabase.writing=on"
    )

    def ours(size: int) -> Callable[[int], None]:
        def write(k: int) -> None:
            for part in batches(chunks[k], size):
                stores[size].save_many(part)

        return write

    def peer_loop(k: int) -> None:
        for document in chunks[k]:
            peer.execute(PEER_SAVE, peer_row(document))

    def copy_documents(k: int) -> None:
        with (
            floor_a.transaction(),
            floor_a.cursor().copy("COPY documents (uuid, document) FROM STDIN") as copy,
        ):
            copy.write(doc_copies[k])

    def copy_our_rows(k: int) -> None:
        copy_rows(floor_b, row_copies[k * per_chunk : (k + 1) * per_chunk])

    cases: dict[str, Callable[[int], None]] = {
        f"ours, save_many batch {size}": ours(size) for size in batch_sizes
    }
    cases["peer, INSERT loop"] = peer_loop
    cases[FLOOR_A] = copy_documents
    cases[FLOOR_B] = copy_our_rows
    seconds = _interleaved(cases, len(chunks))
    stored = floor_b.execute("SELECT count(*) FROM conserver_vcon_documents").fetchone()
    logged = floor_b.execute("SELECT count(*) FROM conserver_vcon_changes").fetchone()
    assert stored == (count,), stored
    assert logged == (count,), logged  # the document trigger recorded each save, once
    rates = {name: count / spent for name, spent in seconds.items()}
    # Bytes on disk per vCon: every table of the database with its indexes and TOAST.
    disk = {f"ours, save_many batch {size}": on_disk(connect(url)) for size, url in urls.items()}
    disk.update({"peer, INSERT loop": on_disk(peer), FLOOR_A: on_disk(floor_a),
                 FLOOR_B: on_disk(floor_b)})  # fmt: skip
    text = statistics.fmean(len(dumps(d).encode("utf-8")) for d in documents)
    found = {
        name: {
            "vcons_per_second": round(rate, 1),
            "x_floor_a": round(rate / rates[FLOOR_A], 4),
            "x_floor_b": round(rate / rates[FLOOR_B], 4),
            "x_peer": round(rate / rates["peer, INSERT loop"], 3),
            "disk_bytes_per_vcon": round(disk[name] / count),
            "x_document_text": round(disk[name] / count / text, 2),
        }
        for name, rate in rates.items()
    }
    return found, round(text)


def on_disk(conn: Any) -> int:
    """Bytes of the current schema's tables, their indexes and TOAST included."""
    row = conn.execute(
        "SELECT sum(pg_total_relation_size(c.oid))::bigint FROM pg_class c"
        " JOIN pg_namespace n ON n.oid = c.relnamespace"
        " WHERE c.relkind = 'r' AND n.nspname = current_schema()"
    ).fetchone()
    return int(row[0] or 0)


def render(results: dict[str, Any]) -> str:
    run = results["run"]
    lines = [
        f"ours against vcon-server's postgres storage and the floors (PostgreSQL "
        f"{run['postgres_version']})",
    ]
    for kind, found in results["single"].items():
        lines.append(f"single save, {kind} vCon ({found['saves']} saves each, interleaved):")
        lines.append(f"  {'':<46}{'x peer':>12}{'x INSERT':>12}{'x floor':>12}")
        lines.append(f"  {'contender':<28}{'p50 ms':>9}{'p95 ms':>9}" + f"{'p50':>6}{'p95':>6}" * 3)
        for name, r in found["contenders"].items():
            ratios = "".join(
                f"{r[f'x_{base}_{q}']:>6.2f}"
                for base in ("peer", "peer_insert", "floor")
                for q in ("p50", "p95")
            )
            lines.append(f"  {name:<28}{r['p50_ms']:>9.2f}{r['p95_ms']:>9.2f}{ratios}")
    lines.append(
        f"bulk ingest of {run['count']} standard vCons (chunks of {run['chunk']}, interleaved):"
    )
    lines.append(
        f"  {'contender':<28}{'vCons/s':>9}{'x floor (a)':>12}{'x floor (b)':>12}{'x peer':>8}"
        f"{'disk B/vCon':>13}{'x text':>8}"
    )
    for name, r in results["bulk"].items():
        lines.append(
            f"  {name:<28}{r['vcons_per_second']:>9.0f}{r['x_floor_a']:>12.3f}"
            f"{r['x_floor_b']:>12.3f}{r['x_peer']:>8.2f}{r['disk_bytes_per_vcon']:>13,}"
            f"{r['x_document_text']:>8.2f}"
        )
    lines.append(f"  (a document's JSON text: {run['document_text_bytes']:,} bytes on average)")
    return "\n".join(lines)


def main() -> int:
    parser = command_line(__doc__)
    parser.add_argument("--repeat", type=int, default=200, help="single saves per contender")
    parser.add_argument("--count", type=int, default=10_000, help="vCons per bulk contender")
    parser.add_argument("--batches", type=int, nargs="+", default=[10, 100, 500, 1000])
    parser.add_argument("--chunk", type=int, default=1000, help="bulk vCons per turn")
    args = parser.parse_args()
    with EmbeddedPostgres() as postgres, EmbeddedRedis(json=True) as redis_server:
        results = run(
            postgres.url, redis_server.url, args.repeat, args.count, tuple(args.batches), args.chunk
        )
    return report(results, render, args.json)


if __name__ == "__main__":
    raise SystemExit(main())
