"""The query plans of the search benchmark (``benchmarks/search.py``): the plan of the
exact statement ``conserver_vcon_search`` executes, captured with ``auto_explain`` when
the server can load it, else from a temporary copy of the function that runs ``EXPLAIN
(ANALYZE, FORMAT JSON)`` on the statement it built; summarized as the indexes used and
the big tables scanned."""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Iterator, Mapping
from typing import Any, Final

__all__ = ["BIG_TABLES", "PlanInfo", "PlanSource", "render_plan", "summarize"]

BIG_TABLES: Final = frozenset({"vcons", "parties", "dialog", "analysis", "attachments"})
SEARCH_STATEMENT_MARK: Final = "WITH page AS"


@dataclasses.dataclass(slots=True)
class PlanInfo:
    plan: dict[str, Any]
    indexes: list[str]
    seq_scans: list[tuple[str, float]]  # (table, actual or else estimated rows), BIG_TABLES

    @property
    def seq_scan_labels(self) -> list[str]:
        return [f"{table} ({rows:g} rows)" for table, rows in self.seq_scans]

    def summary(self) -> dict[str, Any]:
        """The plan as ``--json`` records it: the verdict and the indexes, not the tree."""
        return {
            "index_only": not self.seq_scans,
            "seq_scans": [
                {"table": table, "rows": int(rows) if float(rows).is_integer() else rows}
                for table, rows in self.seq_scans
            ],
            "indexes": list(self.indexes),
        }


def _nodes(node: Mapping[str, Any]) -> Iterator[Mapping[str, Any]]:
    stack = [node]
    while stack:
        current = stack.pop()
        yield current
        stack.extend(reversed(current.get("Plans", [])))


def summarize(plan: dict[str, Any]) -> PlanInfo:
    indexes: dict[str, None] = {}
    seq: list[tuple[str, float]] = []
    for node in _nodes(plan):
        if "Index Name" in node:
            indexes[str(node["Index Name"])] = None
        if node.get("Node Type") == "Seq Scan" and node.get("Relation Name") in BIG_TABLES:
            rows = node.get("Actual Rows", node.get("Plan Rows"))
            seq.append((str(node["Relation Name"]), rows))
    return PlanInfo(plan=plan, indexes=list(indexes), seq_scans=seq)


def render_plan(plan: Mapping[str, Any], width: int = 150) -> list[str]:
    """A compact text rendering of a JSON plan (one line per node, conditions inline)."""
    lines: list[str] = []

    def visit(node: Mapping[str, Any], depth: int) -> None:
        label = str(node.get("Node Type", "?"))
        if "Index Name" in node:
            label += f" using {node['Index Name']}"
        if "Relation Name" in node:
            label += f" on {node['Relation Name']} {node.get('Alias', '')}".rstrip()
        if "Subplan Name" in node:
            label = f"[{node['Subplan Name']}] {label}"
        for key in ("Index Cond", "Recheck Cond", "Hash Cond", "Filter", "Join Filter"):
            if key in node:
                label += f"  {key}: {node[key]}"
        actual = node.get("Actual Rows")
        counts = [f"rows={actual:g}"] if actual is not None else []
        counts.append(f"est={node.get('Plan Rows', '?')}")
        if node.get("Actual Loops", 1) != 1:
            counts.append(f"loops={node['Actual Loops']}")
        label += f"  ({' '.join(counts)})"
        line = "  " * depth + "-> " + label
        lines.append(line if len(line) <= width else line[: width - 3] + "...")
        for child in node.get("Plans", []):
            visit(child, depth + 1)

    visit(plan, 0)
    return lines


class PlanSource:
    """Gets the plan of the statement ``conserver_vcon_search`` builds and executes."""

    def __init__(self, url: str, schema: str = "public") -> None:
        import psycopg

        self._conn = psycopg.connect(url, autocommit=True)
        self._schema = schema
        self._notices: list[str] = []
        self._auto_explain_error = ""
        self.method = self._setup_auto_explain() or self._setup_explain_copy()

    def _setup_auto_explain(self) -> str | None:
        import psycopg

        try:
            self._conn.execute("LOAD 'auto_explain'")
            for setting, value in (
                ("auto_explain.log_min_duration", "0"),
                ("auto_explain.log_nested_statements", "on"),
                ("auto_explain.log_format", "json"),
                ("auto_explain.log_analyze", "on"),
                ("auto_explain.log_level", "notice"),
            ):
                self._conn.execute("SELECT set_config(%s, %s, false)", [setting, value])
        except psycopg.Error as exc:
            self._auto_explain_error = str(exc).splitlines()[0]
            return None
        self._conn.add_notice_handler(lambda diag: self._notices.append(diag.message_primary or ""))
        return "auto_explain (nested statement, log_analyze)"

    def _setup_explain_copy(self) -> str:
        from psycopg import sql

        function = sql.SQL("{}.conserver_vcon_search(jsonb)").format(sql.Identifier(self._schema))
        row = self._conn.execute(
            sql.SQL("SELECT pg_get_functiondef({}::regprocedure)").format(
                sql.Literal(function.as_string(self._conn))
            )
        ).fetchone()
        assert row is not None
        source: str = row[0]
        marker = "EXECUTE format($q$"
        renamed, renames = re.subn(
            r"FUNCTION\s+\S*?conserver_vcon_search\(",
            "FUNCTION pg_temp.conserver_bench_explain(",
            source,
            count=1,
        )
        if renames != 1 or source.count(marker) != 1:
            raise RuntimeError(
                "conserver_vcon_search no longer has exactly one 'EXECUTE format($q$': "
                "update PlanSource in benchmarks/search.py"
            )
        # EXPLAIN is not allowed in a STABLE function: the copy is VOLATILE (the statement
        # it plans is the same; volatility only changes the snapshot it runs under).
        header, as_, body = renamed.partition("\nAS ")  # pg_get_functiondef's layout
        copy = re.sub(r"\b(STABLE|IMMUTABLE)\b", "VOLATILE", header) + as_ + body
        self._conn.execute(
            copy.replace(marker, "EXECUTE 'EXPLAIN (ANALYZE, FORMAT JSON) ' || format($q$")
        )
        return (
            "EXPLAIN (ANALYZE) via a temporary copy of the function "
            f"(auto_explain: {self._auto_explain_error})"
        )

    def plan(self, query: Mapping[str, Any]) -> dict[str, Any]:
        from psycopg.types.json import Jsonb

        if self.method.startswith("auto_explain"):
            self._notices.clear()
            self._conn.execute("SELECT conserver_vcon_search(%s)", [Jsonb(dict(query))])
            for message in self._notices:
                _, found, text = message.partition("plan:")
                if not found:
                    continue
                logged = json.loads(text)
                if SEARCH_STATEMENT_MARK in logged.get("Query Text", ""):
                    plan: dict[str, Any] = logged["Plan"]
                    return plan
            raise RuntimeError("auto_explain logged no plan for the search statement")
        row = self._conn.execute(
            "SELECT pg_temp.conserver_bench_explain(%s)", [Jsonb(dict(query))]
        ).fetchone()
        assert row is not None
        explained: dict[str, Any] = row[0][0]["Plan"]
        return explained

    def close(self) -> None:
        self._conn.close()
