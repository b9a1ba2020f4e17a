"""The cost ledger: exact arithmetic over 10,000 mixed calls; records in the real audit log; the budget."""

from __future__ import annotations

import random
from decimal import Decimal
from fractions import Fraction
from pathlib import Path

import anyio
import pytest
from agent.scripted import PRINCIPAL, MemorySink, ledger, provider
from sophia_agent.build import audit_sink, spent_today
from sophia_agent.errors import BudgetExceeded
from sophia_agent.ledger import Ledger, call_cost, spent_since, strongest_of
from sophia_agent.providers.config import ProviderConfig
from sophia_shared.audit import AuditLog
from sophia_shared.audit_records import record_fields

pytestmark = pytest.mark.anyio
PRICES = [("0", "0"), ("0.15", "0.6"), ("3", "15"), ("0.075", "0.3"), ("2.5", "10"), ("0.0000001", "1e-7")]


async def test_ten_thousand_mixed_calls_cost_exactly_tokens_times_price() -> None:
    configs = [provider(f"p{i}", price_in=a, price_out=b) for i, (a, b) in enumerate(PRICES)]
    rng = random.Random(16)
    sink = MemorySink()
    book = ledger(sink)
    expected = Fraction(0)
    with anyio.fail_after(60):
        for _ in range(10_000):
            config = rng.choice(configs)
            failed = rng.random() < 0.1
            tokens_in, tokens_out = (0, 0) if failed else (rng.randint(0, 200_000), rng.randint(0, 8_000))
            expected += (Fraction(tokens_in) * Fraction(str(config.price_in_per_mtok))
                         + Fraction(tokens_out) * Fraction(str(config.price_out_per_mtok))) / 1_000_000
            await book.record(config, tokens_in, tokens_out, 1.0, "error" if failed else "ok",
                              "provider_server_error" if failed else None)
    assert Fraction(book.total_cost) == expected
    assert Fraction(Decimal(book.report()["cost_usd"])) == expected
    # Read back the way the budget reads the audit log: the records' cost strings sum to the same.
    records = [{**record_fields(e), "ts": e.ts} for e in sink.events]
    assert Fraction(spent_since(records, PRINCIPAL.name, 0)) == expected
    errors = sum(e.outcome == "error" for e in sink.events)
    assert len(sink.events) == 10_000 and errors == book.report()["failed_calls"] > 0


def test_toml_float_prices_are_exact_decimals() -> None:
    config = ProviderConfig.model_validate({"name": "x", "kind": "openai", "model": "m",
                                            "price_in_per_mtok": 0.15, "price_out_per_mtok": 0.6})
    assert config.price_in_per_mtok == Decimal("0.15")
    assert call_cost(config, 1, 1) == Decimal("0.00000075")


async def test_model_calls_are_records_of_the_real_audit_log_and_today_s_spend_is_read_back(tmp_path: Path) -> None:
    log = AuditLog(home=tmp_path)
    config = provider("strong", price_in="3", price_out="15")
    book = Ledger(audit_sink(log), PRINCIPAL, correlation_id="c1")
    with anyio.fail_after(30):
        for _ in range(20):
            await book.record(config, 1000, 100, 12.5, "ok")
        await book.record(config, 0, 0, 3.0, "error", "provider_timeout")
    records = [r for r in log.records() if r["tool"] == "model_call"]
    assert len(records) == 21 and records[-1]["error_code"] == "provider_timeout"
    assert records[0]["principal"] == "alice" and records[0]["server"] == "agent"
    assert '"cost_usd":"0.0045"' in records[0]["arguments"] and '"usage_in":1000' in records[0]["arguments"]
    assert log.verify().intact
    assert await spent_today(log, "alice") == Decimal("0.0045") * 20 == book.total_cost
    assert await spent_today(log, "bob") == 0


async def test_the_budget_counts_what_was_spent_earlier_today() -> None:
    config = provider("strong", price_in="1", price_out="0")
    book = ledger(daily_budget=Decimal("1"), spent_before=Decimal("0.999999"))
    book.check_budget()
    await book.record(config, 1, 0, 1.0, "ok")
    with pytest.raises(BudgetExceeded) as caught:
        book.check_budget()
    assert caught.value.data == {"reason": "daily_budget", "budget_usd": "1", "spent_usd": "1.000000"}


def test_the_strongest_provider_is_the_dearest_not_marked_simple() -> None:
    configs = [provider("cheap", price_in="100", simple=True), provider("mid", price_in="1"),
               provider("top", price_in="3", price_out="15")]
    assert strongest_of(configs) is configs[2]


def test_providers_are_read_from_sophia_toml(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from sophia_agent.providers.config import AgentSettings
    from sophia_shared.settings import load_settings

    config = tmp_path / "sophia.toml"
    config.write_text('[agent]\ndaily_budget_usd = 2.5\n\n[[agent.providers]]\nname = "local"\n'
                      'kind = "openai-compatible"\nbase_url = "http://127.0.0.1:8080/v1"\nmodel = "smollm2"\n'
                      'api_key_env = "LOCAL_KEY"\ntimeout_s = 60\nprice_in_per_mtok = 0.15\n'
                      'price_out_per_mtok = 0.6\n\n'
                      '[[agent.providers]]\nname = "claude"\nkind = "anthropic"\nmodel = "claude-sonnet-4-5"\n')
    monkeypatch.setenv("SOPHIA_CONFIG", str(config))
    settings = load_settings(AgentSettings)
    assert [p.name for p in settings.providers] == ["local", "claude"]  # the order is the fallback order
    assert settings.providers[0].price_in_per_mtok == Decimal("0.15") and settings.daily_budget_usd == Decimal("2.5")
    assert settings.providers[1].url == "https://api.anthropic.com/v1"
