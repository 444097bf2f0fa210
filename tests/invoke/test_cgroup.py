"""The function's memory (layerkit.invoke.cgroup): over its memory size it is killed as Lambda kills it, and judged
after the fact where no cgroup is given."""

from __future__ import annotations

import os

import pytest

from tests.invoke.apps import assert_out_of_memory_then_fresh, invoke_probe


def test_a_function_over_its_memory_size_is_killed_with_out_of_memory(probe_app):
    if probe_app.backend == "sandbox" and os.geteuid() != 0:
        pytest.skip("a memory cgroup needs root or a delegated cgroup here (CI runs as root)")
    assert_out_of_memory_then_fresh(invoke_probe(probe_app, "Probe", {"action": "hog", "mb": 512},
                                                 {"action": "hog", "mb": 16}))


def test_without_a_memory_cgroup_a_peak_over_the_memory_size_fails_after_the_fact(probe_sandbox_app, monkeypatch):
    monkeypatch.setenv("LAYERKIT_SANDBOX_CGROUP", "0")  # as on a machine that gives the kit no memory cgroup
    results = invoke_probe(probe_sandbox_app, "Probe", {"action": "hog", "mb": 512}, {"action": "hog", "mb": 16})
    assert_out_of_memory_then_fresh(results)
    assert "its peak" in results[0].payload["errorMessage"]
