"""A mistake in a user's app, told the CDK's way: one line on the construct at fault, every mistake in one synth.

A kit construct that meets a mistake (a folder without ``python/``, a handler that does not exist, a layer of
another runtime than its function's, a layer over 250 MB...) does not raise: it adds an error annotation to
itself, which ``cdk synth`` prints as ``[Error at /Stack/Construct] <problem>; <fix>`` before it exits 1 (and
``cdk deploy`` refuses), and it goes on with stand-in code so that the rest of the app synthesizes and its own
mistakes are told in the same synth. ``cdk synth --debug`` (``CDK_DEBUG``) or ``LAYERKIT_DEBUG=1`` raises the
error instead, with its traceback.

A construct that failed is ``broken``: the layers and functions that use it take its stand-in without telling
a second mistake of their own.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

from aws_cdk import Annotations
from aws_cdk import aws_lambda as lambda_
from constructs import Construct

from layerkit.core.cache import resolve_cache_dir
from layerkit.core.errors import LayerkitError, debugging
from layerkit.core.targets import Target, Variant
from layerkit.sharing.layer_versions import BuiltVersion

Result = TypeVar("Result")

#: What a stand-in function answers, were it ever invoked: the synth that made it has an error.
_NOT_BUILT = "def handler(event, context):\n    raise RuntimeError('not built: see the error cdk synth printed')\n"


class AlreadyTold(Exception):
    """A mistake another construct of the app told already (a Docker image that cannot be had): this construct is
    broken without a word of its own."""


def attempt(action: Callable[[], Result]) -> tuple[Result | None, str | None]:
    """What ``action`` returns, or None and the one line of the kit's error it raised ("" for one told already)."""
    try:
        return action(), None
    except AlreadyTold:
        return None, ""
    except LayerkitError as error:
        if debugging():
            raise
        return None, str(error)


def tell(construct: Construct, message: str) -> None:
    """The mistake ``message`` as the CDK tells a construct's error: one line that names the construct (the CDK
    prints the path on a line of its own, or not at all, depending on the app's flags). An empty one was told
    on another construct already."""
    if not message:
        return
    path = construct.node.path
    Annotations.of(construct).add_error(message if message.startswith(f"{path}:") or f" {path}:" in message
                                        else f"{path}: {message}")


@contextmanager
def told_on(construct: Construct) -> Iterator[None]:
    """Run a step of ``construct``; the kit's error it raises becomes the construct's error annotation."""
    try:
        yield
    except AlreadyTold:
        pass
    except LayerkitError as error:
        if debugging():
            raise
        tell(construct, str(error))


#: What a broken layer or function claims to be built for (it never deploys: the synth failed).
STAND_IN_TARGET = Target("python3.12", "x86_64")


def stand_in_function_code() -> lambda_.Code:
    """The code of a function that could not be built (it never deploys: the synth failed)."""
    return lambda_.Code.from_inline(_NOT_BUILT)


def stand_in_version() -> BuiltVersion:
    """The one version a layer that could not be built publishes, so that its functions still synthesize: an
    empty ``python/`` (it never deploys: the synth failed)."""
    folder = resolve_cache_dir() / "stand-in" / "layer"
    (folder / "python").mkdir(parents=True, exist_ok=True)
    (folder / "python" / "NOT_BUILT.txt").write_text("see the error cdk synth printed\n", encoding="utf-8")
    serves = Variant((STAND_IN_TARGET.architecture,), (STAND_IN_TARGET.runtime,))
    return BuiltVersion(serves, lambda_.Code.from_asset(str(folder)), "not-built", folder)
