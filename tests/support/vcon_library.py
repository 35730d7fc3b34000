"""vCons built with the real ``vcon`` library (PyPI) and with the conserver's own class
(vcon-server's ``common/vcon.py``, read at test time from the vcon-server mirror on this
machine: ``CONSERVER_SUPABASE_VCON_SERVER_GIT``, a git directory, by default the one the
tool library keeps; the file is not copied into this repository), each through its own
public API, for the tests that save and read them back.

The same builder runs in the fresh virtualenv of the lowest ``vcon`` we accept
(``tests/acceptance/test_vcon_library.py``): it uses only what 0.9.2 has too.
"""

from __future__ import annotations

import functools
import importlib.util
import os
import subprocess
import tempfile
from pathlib import Path
from types import ModuleType
from typing import Any

VCON_SERVER_GIT = Path(
    os.environ.get("CONSERVER_SUPABASE_VCON_SERVER_GIT", "/work/.mirror/vcon-dev+vcon-server/repo")
)


@functools.cache
def _conserver_vcon_file() -> Path:
    """vcon-server's common/vcon.py at the mirror's HEAD, in a temporary file."""
    from .services import unavailable  # here: the lowest-version probe imports this module alone

    try:
        source = subprocess.run(
            ["git", "--git-dir", str(VCON_SERVER_GIT), "show", "HEAD:common/vcon.py"],
            check=True,
            capture_output=True,
            timeout=30,
        ).stdout
    except (OSError, subprocess.SubprocessError) as exc:
        unavailable(f"vcon-server's common/vcon.py is not readable from {VCON_SERVER_GIT}: {exc}")
    target = Path(tempfile.mkdtemp(prefix="conserver-vcon-")) / "vcon.py"
    target.write_bytes(source)
    return target


def conserver_vcon_module() -> ModuleType:
    """The conserver's ``common/vcon.py``, loaded under a name of its own (inside a
    conserver it is ``vcon``; here that name is the PyPI library's)."""
    spec = importlib.util.spec_from_file_location("conserver_common_vcon", _conserver_vcon_file())
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def library_vcon(vcon: ModuleType) -> Any:
    """A ``vcon.Vcon`` built by the library: build_new, parties, a text and a recording
    dialog, two analyses (a JSON body with a float and an integer beyond int64), two
    tags (one whose value holds a ':') and an attachment."""
    from vcon.dialog import Dialog
    from vcon.party import Party

    built = vcon.Vcon.build_new()
    built.vcon_dict["subject"] = "Réclamation 🧾 — فاتورة مزدوجة"
    built.add_party(Party(tel="+15551234567", name="Sarah Johnson", role="customer"))
    built.add_party(Party(mailto="agent@example.com", name="وكيل الدعم"))
    built.add_dialog(
        Dialog(
            type="text",
            start="2026-03-06T09:15:00+00:00",
            parties=[0, 1],
            originator=0,
            mediatype="text/plain",
            body="I was billed twice 🧾",
            encoding="none",
        )
    )
    built.add_dialog(
        Dialog(
            type="recording",
            start="2026-03-06T09:16:00.250000+00:00",
            parties=[0, 1],
            mediatype="audio/x-wav",
            url="https://example.com/rec.wav",
            duration=12.5,
        )
    )
    built.add_analysis(
        type="summary",
        dialog=[0],
        vendor="acme",
        body={"score": 0.1, "big": 12345678901234567890, "labels": ["billing"]},
        encoding="json",
    )
    built.add_analysis(type="transcript", dialog=1, vendor="acme", body="hello", encoding="none")
    built.add_tag("topic", "billing")
    built.add_tag("link", "https://example.com/a")
    built.add_attachment(purpose="notes", body="free text", encoding="none")
    return built


def conserver_vcon(module: ModuleType, vcon_uuid: str) -> Any:
    """A vCon of the conserver's class, built the way its links build one: from a dict
    (what ``VconRedis.get_vcon`` does), then its add_* methods (dict/list bodies become
    JSON strings with ``encoding: "json"``; tags a ``purpose: "tags"`` attachment).

    Not ``build_new()``: its ``created_at`` is ``isoformat()[:-3] + "+00:00"``, which
    gives ``...+00+00:00``, not a date-time (a test shows it refused)."""
    built = module.Vcon(
        {
            "uuid": vcon_uuid,
            "vcon": "0.4.0",
            "created_at": "2026-03-06T09:15:00.123+00:00",
            "parties": [],
            "dialog": [],
            "attachments": [],
            "analysis": [],
        }
    )
    built.add_party({"tel": "+15551234567", "name": "Sarah Johnson"})
    built.add_party({"mailto": "agent@example.com", "meta": {"role": "agent"}})
    built.add_dialog(
        {
            "type": "text",
            "start": "2026-03-06T09:15:00+00:00",
            "parties": [0, 1],
            "mediatype": "text/plain",
            "body": "Hallo, zweimal abgebucht",
            "encoding": "none",
            "duration": 61.25,
        }
    )
    built.add_analysis(
        type="summary", dialog=0, vendor="acme", body={"score": 0.75, "n": 3}, extra={"x": 1}
    )
    built.add_tag("topic", "billing")
    built.add_tag("link", "https://example.com/a")
    built.add_attachment(body={"k": [1, 2]}, type="metadata")
    return built
