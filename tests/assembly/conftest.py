"""An app synthesized once to tamper with, as an attacker would (tests/hostile_assembly.py)."""

from tests.hostile_assembly import clean, host_secret  # noqa: F401  (fixtures)
