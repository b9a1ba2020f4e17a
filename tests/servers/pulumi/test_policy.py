"""Pulumi-specific safety rules: names, config keys, one operation per stack, plan identity."""

from __future__ import annotations

import pytest
from sophia_pulumi.policy import StackGuard, check_config_key, check_name, plan_hash, urns_hash
from sophia_shared.errors import Conflict, InvalidArgument


@pytest.mark.parametrize("name", ["dev", "prod-eu.1", "my_stack", "a" * 100])
def test_valid_names(name: str) -> None:
    assert check_name("stack", name) == name


@pytest.mark.parametrize("name", ["", "..", ".", "a/b", "a b", "dev;rm", "a" * 101, "ünïcode"])
def test_invalid_names(name: str) -> None:
    with pytest.raises(InvalidArgument) as caught:
        check_name("stack", name)
    assert caught.value.data == {"field": "stack"}


def test_config_keys_get_the_project_namespace() -> None:
    assert check_config_key("region", "webapp") == "webapp:region"
    assert check_config_key("aws:region", "webapp") == "aws:region"


@pytest.mark.parametrize("key", ["a:b:c", ":x", "x:", "has space", "", "a/b", "x=1"])
def test_malformed_config_keys(key: str) -> None:
    with pytest.raises(InvalidArgument):
        check_config_key(key, "webapp")


def test_stack_guard_refuses_a_second_operation_and_frees_after() -> None:
    guard = StackGuard()
    with guard.hold("o/p/dev", "up"):
        assert guard.running("o/p/dev") == "up"
        with pytest.raises(Conflict) as caught, guard.hold("o/p/dev", "preview"):
            pass
        assert caught.value.data == {"stack": "o/p/dev", "running": "up"}
        with guard.hold("o/p/prod", "preview"):  # other stacks are independent
            pass
    with guard.hold("o/p/dev", "preview"):
        pass
    assert guard.running("o/p/dev") is None


def test_stack_guard_is_released_when_the_operation_fails() -> None:
    guard = StackGuard()
    with pytest.raises(RuntimeError), guard.hold("o/p/dev", "up"):
        raise RuntimeError("boom")
    assert guard.running("o/p/dev") is None


def _plan(steps: str, size: str, seed: str, time: str) -> dict[str, object]:
    return {
        "manifest": {"time": time, "magic": "m", "version": "v3"},
        "config": {"app:size": size},
        "resourcePlans": {
            "urn:a": {"goal": {"type": "t", "inputs": {"size": size}}, "steps": [steps], "seed": seed},
        },
    }


def test_plan_hash_ignores_manifest_and_seeds_but_not_what_would_happen() -> None:
    base = plan_hash(_plan("create", "small", "s1", "t1"))
    assert plan_hash(_plan("create", "small", "s2", "t2")) == base
    assert plan_hash(_plan("update", "small", "s1", "t1")) != base
    assert plan_hash(_plan("create", "large", "s1", "t1")) != base


def test_urns_hash_is_order_independent() -> None:
    assert urns_hash(["b", "a"]) == urns_hash(["a", "b"]) != urns_hash(["a"])
