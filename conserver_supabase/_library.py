"""The ``vcon`` library's ``Vcon`` (PyPI) and the conserver's own ``Vcon``
(vcon-server's ``common/vcon.py``, what its links hand around): turning one into the
document the storage keeps, and building one from a stored document.

Saving needs no import: both classes are read through their public ``to_dict()``,
which in both is ``json.loads(self.to_json())`` of the object's own dict, so it keeps
its key order and numbers and hands back a fresh dict nobody else holds.

Building one imports ``vcon`` on first use, never at package import: importing the
PyPI library runs the ``logger`` package, whose ``logging.config.fileConfig`` closes
every logging handler of the process (a ``MemoryHandler`` loses its target), replaces
the root logger's handlers with one printing INFO to stdout, re-enables disabled
loggers, forces the ``requests`` and ``paramiko`` loggers to WARNING and adds
``interrupt`` (log, then ``sys.exit(1)``) to the root logger; authlib adds an
"always" warnings filter and a deprecation warning. :func:`vcon_module` imports it
with all of that undone or prevented (see :func:`_host_logging_kept`). Inside a
conserver, ``import vcon`` finds ``common/vcon.py`` (it is on ``PYTHONPATH``), already
imported: that class is what the conserver's links use, so that is what is built.
"""

from __future__ import annotations

import contextlib
import importlib
import sys
import threading
import warnings
from collections.abc import Iterator, Mapping
from types import ModuleType
from typing import Any

from ._errors import InvalidVconError
from ._validation import is_uuid

__all__ = ["document_of", "to_vcon", "vcon_module"]

_import_lock = threading.Lock()


def document_of(vcon: Any) -> dict[str, Any]:
    """The document of a vCon object (anything with ``to_dict()``: ``vcon.Vcon``, the
    conserver's ``Vcon``); :class:`InvalidVconError` when it has no ``to_dict()``, when
    ``to_dict()`` fails or when it returns something other than a JSON object."""
    kind = f"{type(vcon).__module__}.{type(vcon).__qualname__}"
    to_dict = getattr(vcon, "to_dict", None)
    if not callable(to_dict):
        raise InvalidVconError(
            None, "(document)", f"must be a dict, JSON text or an object with to_dict(), got {kind}"
        )
    try:
        document = to_dict()
    except Exception as exc:  # whatever the object raises: the caller's vCon is unusable
        # Both classes serialize with json.dumps: a value JSON cannot hold (a datetime,
        # bytes, a set) is a TypeError naming its type, never the value itself.
        raise InvalidVconError(
            _uuid_of(vcon),
            "(document)",
            f"{kind}.to_dict() failed: {type(exc).__name__}: {exc}"[:300],
        ) from exc
    if isinstance(document, dict):
        return document
    if isinstance(document, Mapping):
        return dict(document)
    raise InvalidVconError(
        _uuid_of(vcon),
        "(document)",
        f"{kind}.to_dict() returned {type(document).__name__}, not a JSON object",
    )


def _uuid_of(vcon: Any) -> str | None:
    """The uuid a vCon object names, for an error message (or None)."""
    try:
        value = vcon.uuid  # a property over the object's dict in both classes
    except Exception:  # a broken object: the message names no vCon
        return None
    return value if isinstance(value, str) and is_uuid(value) else None


def to_vcon(document: Mapping[str, Any], text: str | None = None) -> Any:
    """A ``vcon.Vcon`` built from a stored document through the library's public
    ``Vcon.build_from_json`` (``text``: the document's JSON text when the caller has it).

    The JSON text goes in, so the new object shares nothing with ``document``: the
    PyPI constructor rewrites what it is given in place (``created_at`` to Python's
    ``isoformat``, a missing ``attachments`` added, unknown keys moved after the known
    ones), the conserver's copies it. Raises ``ImportError`` when ``vcon`` is not
    installed.
    """
    if text is None:
        from ._documents import dumps

        text = dumps(document)
    return vcon_module().Vcon.build_from_json(text)


def vcon_module() -> ModuleType:
    """The ``vcon`` module, imported on first use with the host's logging and warning
    filters left as they were (the module already imported, the conserver's own
    included, is returned as is)."""
    module = sys.modules.get("vcon")
    if module is not None:
        return module
    with _import_lock, _host_logging_kept(), warnings.catch_warnings(record=True):
        # record=True: what the import warns about (authlib's deprecation) is about the
        # library's dependencies, nothing a caller of ours can act on; dropped.
        warnings.simplefilter("ignore")
        return importlib.import_module("vcon")


@contextlib.contextmanager
def _host_logging_kept() -> Iterator[None]:
    """Run the block with the process's logging configuration functions disabled, and
    put back every logger's level, propagation and ``disabled`` flag, the root logger's
    handlers and attributes, as they were (loggers created meanwhile get no level).

    Disabling ``fileConfig`` is the part that cannot be undone afterwards: it closes
    every handler of the process before installing its own.
    """
    import logging.config

    manager = logging.Logger.manager
    loggers = [logging.root] + [
        found for found in manager.loggerDict.values() if isinstance(found, logging.Logger)
    ]
    saved = [(lg, lg.level, list(lg.handlers), lg.propagate, lg.disabled) for lg in loggers]
    known = {id(lg) for lg in loggers}
    root_attributes = set(vars(logging.root))
    originals = (logging.config.fileConfig, logging.config.dictConfig, logging.basicConfig)
    logging.config.fileConfig = logging.config.dictConfig = logging.basicConfig = _not_now
    try:
        yield
    finally:
        logging.config.fileConfig, logging.config.dictConfig, logging.basicConfig = originals
        for lg, level, handlers, propagate, disabled in saved:
            lg.setLevel(level)
            lg.propagate = propagate
            lg.disabled = disabled
            if lg is logging.root:  # a library's own loggers keep the NullHandler it adds
                lg.handlers[:] = handlers
        for found in list(manager.loggerDict.values()):
            if isinstance(found, logging.Logger) and id(found) not in known:
                found.setLevel(logging.NOTSET)  # new loggers: no level the host did not set
        for name in set(vars(logging.root)) - root_attributes:
            delattr(logging.root, name)


def _not_now(*args: Any, **kwargs: Any) -> None:
    """Stands in for the logging configuration functions while ``vcon`` is imported."""
