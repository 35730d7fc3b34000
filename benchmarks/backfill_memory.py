"""Peak memory of ``conserver-supabase backfill`` as the input grows.

    python benchmarks/backfill_memory.py [--counts 10000 100000] [--json FILE]

For each count it writes a JSON Lines file of that many standard vCons (streamed to
disk), then runs the real command, ``conserver-supabase backfill FILE``, as a child
process against an embedded PostgreSQL and Redis, and reads the child's peak resident
memory (``ru_maxrss``) when it exits. The backfill streams: its peak should not grow
with the input. Also prints the rate.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks._report import command_line  # noqa: E402
from benchmarks.cache_hit import standard_vcon  # noqa: E402
from conserver_supabase import _migrations as migrations  # noqa: E402
from conserver_supabase.testing import EmbeddedPostgres, EmbeddedRedis  # noqa: E402


def write_input(path: Path, count: int) -> None:
    template = standard_vcon(seed=1)
    with path.open("w", encoding="utf-8") as out:
        for index in range(count):
            template["uuid"] = str(uuid.UUID(int=index + 1, version=4))
            out.write(json.dumps(template) + "\n")


def backfill(path: Path, env: dict[str, str], workdir: Path) -> dict[str, Any]:
    started = time.perf_counter()
    process = subprocess.Popen(  # noqa: S603 - our own command
        [sys.executable, "-m", "conserver_supabase", "backfill", str(path), "--json",
         "--checkpoint", str(workdir / f"{path.stem}.ck"),
         "--report", str(workdir / f"{path.stem}.failures.jsonl")],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )  # fmt: skip
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - started
    assert process.stdout is not None
    summary = json.loads(process.stdout.read())
    process.stdout.close()
    process.returncode = os.waitstatus_to_exitcode(status)
    assert process.returncode == 0, process.returncode
    return {
        "saved": summary["saved"],
        "peak_rss_mib": round(usage.ru_maxrss / 1024, 1),  # KiB on Linux
        "vcons_per_second": round(summary["saved"] / seconds, 1),
    }


def main() -> int:
    parser = command_line(__doc__)
    parser.add_argument("--counts", type=int, nargs="+", default=[10_000, 100_000])
    args = parser.parse_args()
    results: dict[str, Any] = {}
    with (
        tempfile.TemporaryDirectory(prefix="csb-bench-") as tmp,
        EmbeddedPostgres() as postgres,
        EmbeddedRedis(json=True) as redis_server,
    ):
        migrations.apply(postgres.url)
        workdir = Path(tmp)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("SUPABASE_", "REDIS_"))}
        env.update(SUPABASE_DB_URL=postgres.url, REDIS_URL=redis_server.url)
        for count in args.counts:
            path = workdir / f"in-{count}.jsonl"
            write_input(path, count)
            results[str(count)] = {"input_mib": round(path.stat().st_size / 2**20, 1)}
            results[str(count)].update(backfill(path, env, workdir))
            path.unlink()
    print("backfill of a JSON Lines file: peak memory of the process as the input grows")
    print(f"{'vCons':>9}{'input MiB':>11}{'peak RSS MiB':>14}{'vCons/s':>10}")
    for count, r in results.items():
        print(
            f"{int(count):>9}{r['input_mib']:>11}{r['peak_rss_mib']:>14}"
            f"{r['vcons_per_second']:>10.0f}"
        )
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n", "utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
