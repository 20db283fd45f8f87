"""Settings come from BPO_* variables, are immutable, and a bad one is named."""

from __future__ import annotations

import dataclasses
import uuid
from pathlib import Path

import pytest

from bpo.core.ids import uuid7
from bpo.settings import Settings, SettingsError


def test_defaults_without_variables() -> None:
    settings = Settings.from_env({})
    assert settings.port == 8000
    assert settings.host == "127.0.0.1"
    assert settings.data_dir == Path(".bpo")
    assert settings.embedded


def test_reads_every_variable() -> None:
    settings = Settings.from_env(
        {
            "BPO_DATABASE_URL": "postgresql://u:p@db:5432/bpo",
            "BPO_BROKER_URL": "amqp://guest:guest@mq:5672/",
            "BPO_PORT": "9000",
            "BPO_DATA_DIR": "/tmp/x",
            "BPO_LOG_LEVEL": "debug",
            "BPO_LOG_JSON": "false",
        }
    )
    assert settings.database_url == "postgresql://u:p@db:5432/bpo"
    assert settings.broker_url == "amqp://guest:guest@mq:5672/"
    assert (settings.port, settings.data_dir, settings.log_level) == (9000, Path("/tmp/x"), "DEBUG")
    assert settings.log_json is False
    assert not settings.embedded


def test_settings_are_immutable() -> None:
    settings = Settings.from_env({})
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.port = 1  # type: ignore[misc]


@pytest.mark.parametrize(
    ("variable", "value", "says"),
    [
        ("BPO_PORT", "eighty", "whole number"),
        ("BPO_PORT", "70000", "between 1 and 65535"),
        ("BPO_DATABASE_URL", "mysql://db/bpo", "scheme"),
        ("BPO_DATABASE_URL", "postgresql://db:5432/", "database"),
        ("BPO_BROKER_URL", "kafka://mq:9092", "scheme"),
        ("BPO_LOG_LEVEL", "LOUD", "one of"),
        ("BPO_LOG_JSON", "perhaps", "true/false"),
        ("BPO_SECRET_KEY", "short", "32 characters"),
        ("BPO_ENV", "staging", "development, test or production"),
        ("BPO_DB_CONNECT_TIMEOUT", "-1", "greater than zero"),
    ],
)
def test_a_bad_setting_names_its_variable(variable: str, value: str, says: str) -> None:
    with pytest.raises(SettingsError) as caught:
        Settings.from_env({variable: value})
    assert caught.value.variable == variable
    assert str(caught.value).startswith(f"{variable}: ")
    assert says in str(caught.value)
    assert repr(value) in str(caught.value)


def test_production_requires_external_services_and_a_key() -> None:
    with pytest.raises(SettingsError) as caught:
        Settings.from_env({"BPO_ENV": "production"})
    assert caught.value.variable == "BPO_DATABASE_URL"


def test_uuid7_is_time_ordered_and_versioned() -> None:
    ids = [uuid7() for _ in range(5000)]
    assert ids == sorted(ids)
    assert len(set(ids)) == len(ids)
    assert all(i.version == 7 and i.variant == uuid.RFC_4122 for i in ids)


def test_webhook_allowlist_defaults_to_loopback_in_development_only() -> None:
    assert Settings.from_env({}).webhook_allowlist == ("localhost", "127.0.0.0/8", "::1/128")
    assert Settings.from_env({"BPO_ENV": "test"}).webhook_allowlist == ()
    chosen = Settings.from_env({"BPO_WEBHOOK_ALLOWLIST": "hooks.internal, 10.0.0.0/8"})
    assert chosen.webhook_allowlist == ("hooks.internal", "10.0.0.0/8")
    with pytest.raises(SettingsError, match="BPO_WEBHOOK_ALLOWLIST"):
        Settings.from_env({"BPO_WEBHOOK_ALLOWLIST": "10.0.0.0/99"})
