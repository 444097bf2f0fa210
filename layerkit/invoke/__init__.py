"""Local invoke: run a synthesized function with its layers laid out as Lambda lays them out.

Two backends: a container of the public Lambda base image where a Docker daemon answers, and a
Lambda-shaped bubblewrap sandbox (official ``awslambdaric`` client, a local Runtime API) where none does.
"""

from layerkit.invoke.events import read_events
from layerkit.invoke.result import Invocation
from layerkit.invoke.session import invoke_function

__all__ = ["Invocation", "invoke_function", "read_events"]
