"""Errors a user can cause. Each message says what is wrong, where, and how to fix it."""

from __future__ import annotations

import os
import re
import sys
from types import TracebackType


def debugging() -> bool:
    """Whether the user asked for tracebacks: ``cdk synth --debug`` (the CDK CLI sets ``CDK_DEBUG``) or
    ``LAYERKIT_DEBUG=1``."""
    return any(os.environ.get(name, "").lower() in ("1", "true") for name in ("CDK_DEBUG", "LAYERKIT_DEBUG"))


class LayerkitError(Exception):
    """Base of every mistake the kit reports; the CLI prints it on one line, without a traceback."""


class UsageError(LayerkitError):
    """A command line that cannot be run as written (options that need each other, a missing argument): the
    CLI exits 2 with its usage, as argparse does for what it checks itself."""


class UnsupportedTargetError(LayerkitError):
    """A runtime or architecture that Lambda (or the kit) does not accept."""


class LayerSourceError(LayerkitError):
    """A layer or function folder that cannot become working code (no ``python/``, a missing index file...)."""


class SecretError(LayerSourceError):
    """A file of the user's own folder holds a secret (a private key, an AWS secret access key) that would deploy."""


class DeclarationError(LayerSourceError):
    """A dependency declaration the kit cannot honour: an unreadable line, a stale lock, two that disagree."""


class MissingWheelError(LayerkitError):
    """A requirement has no binary wheel for the target runtime and platform."""


class NativeCodeError(LayerkitError):
    """A compiled file built for another Python, operating system or machine than the target's."""


class BuildError(LayerkitError):
    """The installer failed for a reason other than a missing wheel."""


class UnsafeContentError(BuildError):
    """A package or an asset that names a file outside itself (an absolute path, ``..``): broken or hostile."""


class TooLargeError(LayerkitError):
    """Code that Lambda would refuse for its size (250 MB unzipped for a function's code and all its layers)."""


class CacheError(LayerkitError):
    """The kit's cache cannot be written (a full disk, a read-only folder)."""


class AssemblyError(LayerkitError):
    """A cloud assembly (``cdk.out``) that is missing, corrupt or lacks what was asked for."""


class SynthError(AssemblyError):
    """A synth that failed on mistakes in the app: each one line, as the CDK printed it (``mistakes``)."""

    def __init__(self, message: str, mistakes: list[str], *, shown: bool = False) -> None:
        super().__init__(message)
        self.mistakes = mistakes
        self.shown = shown  # printed already, as the synth ran


class MissingInterpreterError(LayerkitError):
    """No Python of the exact version a function or a layer's bytecode needs."""

    def __init__(self, message: str, *, reason: str | None = None) -> None:
        super().__init__(message)
        self.reason = reason or message  # what is missing, without the fix


class InvokeError(LayerkitError):
    """A local invoke that could not start: bad event, missing interpreter, missing sandbox tool."""


_CREDENTIALS = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)[^/@\s]+@")


def redact(text: str) -> str:
    """``text`` with the credentials of every URL in it replaced by ``***``: a private index's token
    (CodeArtifact's, say) never reaches a message, a log or a file."""
    return _CREDENTIALS.sub(r"\g<scheme>***@", text)


def one_line_uncaught(kind: type[BaseException], error: BaseException, trace: TracebackType | None) -> None:
    """``sys.excepthook`` of a CDK app that imports the kit: a mistake that ends the app's process is one line,
    not a traceback. The kit's own error prints its message; the CDK's "ValidationFailed" (error annotations,
    with the recommended flag ``@aws-cdk/core:annotationsInValidationReport``) was printed by the CDK above,
    one ``ERROR`` line per mistake, and only its end is said here. Anything else, and everything under
    ``cdk synth --debug``, gets Python's traceback."""
    if debugging() or not (isinstance(error, LayerkitError) or
                           (kind is RuntimeError and str(error).startswith("ValidationFailed"))):
        sys.__excepthook__(kind, error, trace)
        return
    if isinstance(error, LayerkitError):
        print(f"layerkit: error: {error}", file=sys.stderr)
    else:
        report = str(error).rpartition("can be found in: ")[2].strip()
        print(f"layerkit: the synth stopped on the errors above (report: {report}); cdk synth --debug shows the "
              "traceback", file=sys.stderr)
    sys.stderr.flush()
