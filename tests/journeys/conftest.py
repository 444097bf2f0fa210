"""The example app's functions, synthesized once per session and run on each backend (tests/invoke/apps.py)."""

from tests.invoke.apps import example_functions, layers_app  # noqa: F401  (fixtures)
