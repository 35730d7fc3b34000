"""Write tests/data/legacy/*.json: what vcon-server's own converters make of each vCon of
the legacy-shape corpus (tests/support/legacy_corpus.py, plus three of the conserver's
older-shape example vCons).

Run from the repository root with a copy of vcon-server (a checkout, or its bare git
directory: the files are then read with ``git show REV:path``)::

    python scripts/legacy_expected.py --vcon-server PATH [--rev HEAD]

Each file holds ``input``, ``to_legacy`` (``lib.vcon_egress_compat.to_legacy(input,
"0.0.1")``) and ``normalized`` (``lib.vcon_compat.normalize_legacy_fields`` of a copy):
data only, no vcon-server code lands in this repository. Their converters are loaded
from the copy's ``common/lib`` and need nothing but the standard library.
"""

from __future__ import annotations

import argparse
import copy
import importlib.util
import json
import subprocess
import sys
import tempfile
from pathlib import Path
from types import ModuleType
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.support.legacy_corpus import inputs  # noqa: E402

OUT = ROOT / "tests" / "data" / "legacy"
_MODULES = ("common/lib/vcon_compat.py", "common/lib/vcon_egress_compat.py")
#: The conserver's own older-shape example vCons (mimetype, type-only attachments,
#: native bodies), by path in its repository.
HOST_EXAMPLES = {
    "host-dataset-9a752af2": "tests/dataset/9a752af2-ddf0-4eb8-91d6-3e79d2457284.vcon.json",
    "host-dataset-11ca4148": "tests/dataset/11ca4148-6369-41fc-a3ac-476c31cf9740.vcon.json",
    "host-hugging-llm-b217b61e": (
        "conserver/links/hugging_llm_link/tests/b217b61e-ff68-4f17-a33d-bbc667e8936d.vcon.json"
    ),
}


def _read(source: Path, rev: str, path: str) -> str:
    if (source / path).is_file():
        return (source / path).read_text("utf-8")
    shown = subprocess.run(  # noqa: S603 - the user's own path, no shell
        ["git", "--git-dir", str(source), "show", f"{rev}:{path}"],  # noqa: S607 - git on PATH
        check=True, capture_output=True, text=True,
    )  # fmt: skip
    return shown.stdout


def _load(name: str, text: str, where: Path) -> ModuleType:
    path = where / f"{name}.py"
    path.write_text(text, "utf-8")
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _unsigned(document: dict[str, Any]) -> dict[str, Any]:
    """The example without its recordings' presigned query strings (access key ids that
    secret scanners flag; fake, but nothing the shapes need)."""
    for dialog in document.get("dialog") or []:
        if isinstance(dialog.get("url"), str):
            dialog["url"] = dialog["url"].partition("?")[0]
    return document


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vcon-server", type=Path, required=True, help="checkout or git dir")
    parser.add_argument("--rev", default="HEAD", help="the revision, for a git dir")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        compat, egress = (
            _load(Path(m).stem, _read(args.vcon_server, args.rev, m), Path(tmp)) for m in _MODULES
        )
    corpus: dict[str, Any] = inputs()
    for name, path in HOST_EXAMPLES.items():
        corpus[name] = _unsigned(json.loads(_read(args.vcon_server, args.rev, path)))
    OUT.mkdir(parents=True, exist_ok=True)
    for name, document in corpus.items():
        case = {
            "input": document,
            "to_legacy": egress.to_legacy(document, "0.0.1"),
            "normalized": compat.normalize_legacy_fields(copy.deepcopy(document)),
        }
        text = json.dumps(case, indent=1, ensure_ascii=False, allow_nan=False) + "\n"
        (OUT / f"{name}.json").write_text(text, "utf-8")
    print(f"wrote {len(corpus)} cases to {OUT.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
