"""The container backend (layerkit.invoke.container): what it tells about its network."""

from __future__ import annotations

from tests.invoke.apps import cli_probe


def test_the_container_says_that_it_shares_this_machines_network(probe_container_app):
    result = cli_probe(probe_container_app, "S/Probe")
    assert result.returncode == 0, result.stderr
    assert "layerkit: the container shares this machine's network (--network host)" in result.stderr
