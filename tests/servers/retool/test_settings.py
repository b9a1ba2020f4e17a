"""RetoolSettings: env names, address normalisation, workflow keys as secrets, one-line failures."""

from __future__ import annotations

import pytest
from sophia_retool.settings import RetoolSettings
from sophia_shared.settings import SettingsError, load_settings

WID = "6c2ee997-7519-533b-b714-20635b22c83e"


def test_env_names_and_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SOPHIA_RETOOL_BASE_URL", "https://acme.retool.com/api/v2/")
    monkeypatch.setenv("SOPHIA_RETOOL_API_TOKEN", "retool_01abc")
    monkeypatch.setenv("SOPHIA_RETOOL_WORKFLOW_KEYS", f'{{"{WID.upper()}": "retool_wk_secret"}}')
    settings = load_settings(RetoolSettings)
    assert settings.base_url == "https://acme.retool.com"
    assert settings.rate_limit_per_minute == 45
    assert settings.missing() == []
    assert settings.workflow_keys[WID].get_secret_value() == "retool_wk_secret"
    # Secrets never show in reprs (and so not in logs of the settings object).
    assert "retool_wk_secret" not in repr(settings) and "retool_01abc" not in repr(settings)


def test_missing_settings_are_named() -> None:
    assert RetoolSettings(base_url=None, api_token=None).missing() == [
        "SOPHIA_RETOOL_BASE_URL",
        "SOPHIA_RETOOL_API_TOKEN",
    ]


@pytest.mark.parametrize(
    ("env", "value", "setting"),
    [
        ("SOPHIA_RETOOL_BASE_URL", "acme.retool.com", "SOPHIA_RETOOL_BASE_URL"),
        ("SOPHIA_RETOOL_BASE_URL", "https://user:pw@acme.retool.com", "SOPHIA_RETOOL_BASE_URL"),
        ("SOPHIA_RETOOL_WORKFLOW_KEYS", '{"nightly": "retool_wk_x"}', "SOPHIA_RETOOL_WORKFLOW_KEYS"),
        ("SOPHIA_RETOOL_RATE_LIMIT_PER_MINUTE", "0", "SOPHIA_RETOOL_RATE_LIMIT_PER_MINUTE"),
    ],
)
def test_bad_settings_fail_in_one_line_naming_the_setting(
    monkeypatch: pytest.MonkeyPatch, env: str, value: str, setting: str
) -> None:
    monkeypatch.setenv(env, value)
    with pytest.raises(SettingsError) as failure:
        load_settings(RetoolSettings)
    assert setting in str(failure.value) and "\n" not in str(failure.value)
    assert "pw@" not in str(failure.value)
