"""Which tenant a save stamps on a vCon's rows (vcon-mcp's row-level security).

vcon-mcp isolates tenants by ``tenant_id`` on ``vcons`` and every child table. It
takes the tenant from the vCon itself when ``RLS_ENABLED=true``: the first
attachment of type ``TENANT_ATTACHMENT_TYPE`` whose body yields a value at the dot
path ``TENANT_JSON_PATH``, stringified; otherwise NULL. :func:`from_attachments` is
that rule, and :func:`tenant_for` the storage's policy around it:

* no tenant option: ``None`` (the database leaves ``tenant_id`` as it is);
* ``tenant_from_attachment`` alone: the attachment's tenant, or NULL without one
  (as vcon-mcp); a re-save may move the vCon to another tenant;
* ``tenant_id``: that tenant, *exclusively* (the database refuses to take over a vCon
  of another tenant); with ``tenant_from_attachment`` too, an attachment naming a
  different tenant is an invalid vCon for this storage (nothing is written).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from typing import Any

from ._config import StorageConfig
from ._database import Tenant
from ._errors import InvalidVconError

__all__ = ["from_attachments", "tenant_for", "tenants_for"]


def tenant_for(config: StorageConfig, document: Mapping[str, Any], vcon_uuid: str) -> Tenant | None:
    """The tenant to stamp on ``document``'s rows, or ``None`` (leave them as they are).

    Raises :class:`InvalidVconError` when ``tenant_id`` and the vCon's tenant
    attachment disagree.
    """
    if not config.tenant_from_attachment:
        return None if config.tenant_id is None else Tenant(config.tenant_id, exclusive=True)
    found = from_attachments(document, config.tenant_attachment_type, config.tenant_json_path)
    if config.tenant_id is None:
        return Tenant(None if found is None else found[1])
    if found is not None and found[1] != config.tenant_id:
        raise InvalidVconError(
            vcon_uuid,
            f"attachments[{found[0]}].body",
            f"names another tenant than this storage's tenant_id {config.tenant_id!r}",
        )
    return Tenant(config.tenant_id, exclusive=True)


def tenants_for(
    config: StorageConfig, documents: Sequence[Mapping[str, Any]], vcon_uuids: Sequence[str]
) -> list[Tenant] | None:
    """:func:`tenant_for` of each document, or ``None`` without tenant options."""
    if config.tenant_id is None and not config.tenant_from_attachment:
        return None
    tenants = []
    for document, vcon_uuid in zip(documents, vcon_uuids, strict=True):
        tenant = tenant_for(config, document, vcon_uuid)
        assert tenant is not None  # a tenant option is set
        tenants.append(tenant)
    return tenants


def from_attachments(
    document: Mapping[str, Any], attachment_type: str, json_path: str
) -> tuple[int, str] | None:
    """``(index, tenant)`` from the vCon's first attachment that yields one, as
    vcon-mcp's ``extractTenantFromVCon`` does; ``None`` when none does.

    An attachment counts when its ``type`` is ``attachment_type`` and its body is
    not empty: a string body with ``encoding: json`` is parsed (unparsable: skipped),
    a ``base64url`` one is skipped, any other body is walked as it is. The value at
    ``json_path`` (keys separated by dots) is stringified as JavaScript's ``String()``
    does for strings, numbers and booleans. Unlike vcon-mcp (``"[object Object]"``),
    an object or array there is no tenant.
    """
    attachments = document.get("attachments")
    if not isinstance(attachments, list):
        return None
    for index, attachment in enumerate(attachments):
        if not isinstance(attachment, Mapping) or attachment.get("type") != attachment_type:
            continue
        body = attachment.get("body")
        if not body:  # JavaScript's "!attachment.body": null, "", 0, false
            continue
        encoding = attachment.get("encoding")
        if encoding == "base64url":
            continue
        if encoding == "json" and isinstance(body, str):
            try:
                body = json.loads(body)
            except (ValueError, RecursionError):
                continue
        tenant = _js_string(_walk(body, json_path))
        if tenant:  # vcon-mcp moves on past an empty tenant
            return index, tenant
    return None


def _walk(value: Any, path: str) -> Any:
    for part in path.split("."):
        if isinstance(value, Mapping):
            value = value.get(part)
        elif isinstance(value, list) and part.isdigit() and str(int(part)) == part:
            value = value[int(part)] if int(part) < len(value) else None
        else:
            return None
    return value


def _js_string(value: Any) -> str | None:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isfinite(value) and value.is_integer() and abs(value) < 1e21:
            return str(int(value))
        return repr(value) if math.isfinite(value) else None
    return None
