"""The apps the invoke tests run, each synthesized and built once per session (tests/invoke/apps.py)."""

from tests.hostile_assembly import clean, host_secret  # noqa: F401  (fixtures)
from tests.invoke.apps import (  # noqa: F401  (fixtures)
    example_functions,
    host_server,
    layers_app,
    limits_app,
    limits_assembly,
    probe_app,
    probe_container_app,
    probe_sandbox_app,
    small_app,
)
