"""What every benchmark's command line shares: its description, ``--json FILE``, and the
report (the rendered table on stdout, the results as JSON in the file)."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = ["command_line", "report"]


def command_line(doc: str | None) -> argparse.ArgumentParser:
    """A parser described by the first paragraph of ``doc`` (the script's docstring),
    with ``--json FILE``; the script adds its own options."""
    parser = argparse.ArgumentParser(description=(doc or "").split("\n\n")[0] or None)
    parser.add_argument("--json", type=Path, help="also write the results to FILE as JSON")
    return parser


def report(results: Any, render: Callable[[Any], str], json_file: Path | None) -> int:
    """Print ``render(results)`` and write ``results`` to ``json_file`` (when given);
    return the exit status."""
    print(render(results))
    if json_file is not None:
        json_file.write_text(json.dumps(results, indent=2) + "\n", "utf-8")
    return 0
