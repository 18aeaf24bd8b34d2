"""Settings composed of the components' own configs: the flat TIERFLEET_* names, defaults
written once, cross-field rules at start-up."""

import pytest
from pydantic import ValidationError

from policies.compression import CompressionPlan, plan_for
from queues.config.budgets import BudgetConfig
from queues.config.compression import CompressionConfig
from queues.config.providers import ProviderConfig
from queues.settings import Settings


def test_the_variables_keep_their_flat_names(monkeypatch):
    monkeypatch.setenv("TIERFLEET_KEEP_LAST_MESSAGES", "6")
    monkeypatch.setenv("TIERFLEET_PROVIDER_LIMITS", '{"openai": 4}')
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    settings = Settings()
    assert settings.keep_last_messages == 6 and settings.provider_limits == {"openai": 4}
    assert settings.openai_api_key is not None
    assert settings.openai_api_key.get_secret_value() == "sk-test"
    # Each component is handed its own config's type, and any Settings is one.
    assert isinstance(settings, CompressionConfig | BudgetConfig | ProviderConfig)
    assert CompressionPlan.of(settings).keep_last == 6


def test_the_plan_defaults_are_the_configs():
    assert CompressionPlan.of(CompressionConfig()) == CompressionPlan()
    economy = plan_for(Settings(), Settings(), economy=True)
    assert economy.history_budget_tokens == Settings().economy_history_tokens


@pytest.mark.parametrize(
    ("fields", "named"),
    [
        ({"session_budget_usd": 1.0, "session_soft_budget_usd": 2.0}, "SESSION_SOFT_BUDGET_USD"),
        ({"tenant_budget_tokens": 10, "tenant_soft_budget_tokens": 11}, "TENANT_BUDGET_TOKENS"),
        ({"router": "learned"}, "TIERFLEET_ROUTER_ARTIFACT"),
        ({"broker_url": "amqp://guest@localhost//"}, "TIERFLEET_REDIS_URL"),
    ],
)
def test_cross_field_rules_fail_when_the_settings_are_read(fields, named):
    with pytest.raises(ValidationError, match=named):
        Settings(**fields)
