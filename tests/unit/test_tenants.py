"""Which tenant a save stamps: the rule of vcon-mcp's tenant attachment, the storage's
policy around it, the options (no server)."""

from __future__ import annotations

from typing import Any

import pytest

from conserver_supabase import (
    ConfigurationError,
    InvalidVconError,
    StorageConfig,
)
from conserver_supabase._database import Tenant
from conserver_supabase._tenants import from_attachments, tenant_for

from ..support.vcons import new_uuid


def vcon(tenant: Any = None, *, parties: int = 2, **attachment: Any) -> dict[str, Any]:
    """A small vCon with a row in every table; ``tenant``: a tenant attachment's id."""
    attachments: list[dict[str, Any]] = [{"type": "tags", "body": ["kind:test"]}]
    if tenant is not None:
        attachments.append({"type": "tenant", "body": {"id": tenant}, **attachment})
    return {
        "vcon": "0.4.0",
        "uuid": new_uuid(),
        "created_at": "2026-01-02T03:04:05+00:00",
        "subject": "tenant test",
        "parties": [{"name": f"party {n}", "tel": f"+1555010000{n}"} for n in range(parties)],
        "dialog": [{"type": "text", "start": "2026-01-02T03:04:05Z", "parties": [0], "body": "hi"}],
        "analysis": [{"type": "summary", "vendor": "test", "body": "a summary"}],
        "attachments": attachments,
    }


class TestFromAttachments:
    """vcon-mcp's extractTenantFromVCon, rule by rule."""

    @pytest.mark.parametrize(
        ("attachments", "expected"),
        [
            ([{"type": "tenant", "body": {"id": "acme"}}], "acme"),
            ([{"type": "tenant", "encoding": "json", "body": '{"id": "acme"}'}], "acme"),
            ([{"type": "tenant", "encoding": "none", "body": {"id": 42}}], "42"),
            ([{"type": "tenant", "body": {"id": True}}], "true"),
            ([{"type": "tenant", "body": {"id": 7.0}}], "7"),
            ([{"type": "tags", "body": {"id": "acme"}}], None),
            ([{"type": "tenant", "body": {"other": "acme"}}], None),
            ([{"type": "tenant", "body": {"id": ""}}], None),
            ([{"type": "tenant", "body": {"id": {"nested": 1}}}], None),
            ([{"type": "tenant", "encoding": "json", "body": "{not json"}], None),
            ([{"type": "tenant", "encoding": "base64url", "body": "eyJpZCI6ImFjbWUifQ"}], None),
            ([{"type": "tenant", "body": '{"id": "acme"}'}], None),  # a string, not parsed
            ([{"type": "tenant", "body": None}], None),
            (
                [
                    {"type": "tenant", "body": {"id": None}},
                    {"type": "tenant", "body": {"id": "second"}},
                ],
                "second",
            ),
            ([], None),
        ],
    )
    def test_rules(self, attachments: list[dict[str, Any]], expected: str | None) -> None:
        found = from_attachments({"attachments": attachments}, "tenant", "id")
        assert (None if found is None else found[1]) == expected

    def test_dot_path_and_attachment_type(self) -> None:
        document = {
            "attachments": [
                {"type": "org", "encoding": "json", "body": '{"a": {"b": ["x", "y"]}}'},
            ]
        }
        assert from_attachments(document, "org", "a.b.1") == (0, "y")
        assert from_attachments(document, "org", "a.c") is None
        assert from_attachments({}, "org", "a") is None


class TestPolicy:
    def config(self, **options: Any) -> StorageConfig:
        return StorageConfig.from_options({"database_url": "postgresql://x/y", **options})

    def test_without_options_the_tenant_is_left_alone(self) -> None:
        assert tenant_for(self.config(), vcon("acme"), "u") is None

    def test_fixed_tenant_is_exclusive(self) -> None:
        assert tenant_for(self.config(tenant_id="acme"), vcon("globex"), "u") == Tenant(
            "acme", exclusive=True
        )

    def test_from_attachment_like_vcon_mcp(self) -> None:
        config = self.config(tenant_from_attachment=True)
        assert tenant_for(config, vcon("globex"), "u") == Tenant("globex")
        assert tenant_for(config, vcon(), "u") == Tenant(None)

    def test_both_the_fixed_tenant_is_the_fallback_and_a_conflict_is_refused(self) -> None:
        config = self.config(tenant_id="acme", tenant_from_attachment="true")
        assert tenant_for(config, vcon(), "u") == Tenant("acme", exclusive=True)
        assert tenant_for(config, vcon("acme"), "u") == Tenant("acme", exclusive=True)
        with pytest.raises(InvalidVconError) as caught:
            tenant_for(config, vcon("globex"), "u")
        assert caught.value.field == "attachments[1].body"
        assert "globex" not in str(caught.value)


class TestOptions:
    def test_defaults(self) -> None:
        config = StorageConfig.from_options({})
        assert (config.tenant_id, config.tenant_from_attachment) == (None, False)
        assert (config.tenant_attachment_type, config.tenant_json_path) == ("tenant", "id")

    @pytest.mark.parametrize(
        ("options", "option"),
        [
            ({"tenant_id": 5}, "tenant_id"),
            ({"tenant_id": "a\x00b"}, "tenant_id"),
            ({"tenant_from_attachment": "sometimes"}, "tenant_from_attachment"),
            ({"tenant_from_attachment": True, "tenant_json_path": "a..b"}, "tenant_json_path"),
            (
                {"tenant_from_attachment": True, "tenant_attachment_type": 3},
                "tenant_attachment_type",
            ),
            ({"tenant_json_path": "org.id"}, "tenant_json_path"),
            ({"tenant_attachment_type": "org"}, "tenant_attachment_type"),
        ],
    )
    def test_bad_values_name_the_option(self, options: dict[str, Any], option: str) -> None:
        with pytest.raises(ConfigurationError) as caught:
            StorageConfig.from_options(options)
        assert caught.value.option == option

    def test_strings_from_yaml_and_the_environment(self) -> None:
        config = StorageConfig.from_options(
            {"tenant_id": " ${TENANT:-acme} ", "tenant_from_attachment": "yes"}, environ={}
        )
        assert (config.tenant_id, config.tenant_from_attachment) == ("acme", True)
        assert StorageConfig.from_options({"tenant_id": ""}).tenant_id is None
