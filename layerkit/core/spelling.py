"""How a fix is written where the user meets it: in an app (a construct's keyword, a context key), on the
command line (``layerkit``'s own options), or in a pytest test (the fixture's keyword). A message that tells a fix
takes its words from the spelling in use, so the user can type the fix in what they ran.

The command line and the pytest plugin set theirs once (:func:`speaking`); everything else is an app's.
"""

from __future__ import annotations

import contextvars
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass


@dataclass(frozen=True)
class Spelling:
    """Each fix the kit suggests, as the user types it where they are."""

    bytecode: str  # ship no .pyc
    tests: str  # leave the packages' tests out
    debug_symbols: str  # strip the debug symbols
    without: str  # leave boto3 and botocore out
    exclude: str  # leave a file of the folder out
    docker: str  # build with Docker
    local: str  # build without Docker
    host_network: str  # the bundling container on the host's network
    synth: str  # synthesize the app again before an invoke
    env: str  # give a variable a local value for an invoke ({name} stands for it)


IN_APP = Spelling(
    bytecode="bytecode=False", tests="slim=Slim(tests=True)", debug_symbols="slim=Slim(debug_symbols=True)",
    without="slim=Slim(without=('boto3', 'botocore'))", exclude="asset_excludes=[...]",
    docker="builder='docker' (or cdk synth -c layerkit:builder=docker)",
    local="builder='local' (or cdk synth -c layerkit:builder=local)",
    host_network="docker_network='host' (or cdk synth -c layerkit:docker-network=host)",
    synth="synthesize it again", env="set it in the function's environment")
ON_COMMAND_LINE = Spelling(
    bytecode="--no-bytecode", tests="--slim tests", debug_symbols="--slim debug-symbols",
    without="--without boto3 --without botocore", exclude="--exclude PATTERN", docker="--builder docker",
    local="--builder local", host_network="--docker-network host", synth="pass --synth to synthesize first",
    env="pass --env {name}=... to set it locally")
IN_PYTEST = Spelling(
    **{**IN_APP.__dict__, "synth": "synthesize it again, or leave out --layerkit-assembly to synthesize once per "
                                   "session", "env": "pass env={{'{name}': ...}} to layerkit_invoke to set it locally"})

_IN_USE: contextvars.ContextVar[Spelling] = contextvars.ContextVar("layerkit_spelling", default=IN_APP)


def in_use() -> Spelling:
    """The spelling of where the user is (an app, unless the command line or the pytest plugin said otherwise)."""
    return _IN_USE.get()


@contextmanager
def speaking(spelling: Spelling) -> Iterator[None]:
    """Fixes inside are written as ``spelling`` writes them."""
    token = _IN_USE.set(spelling)
    try:
        yield
    finally:
        _IN_USE.reset(token)
