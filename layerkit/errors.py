"""Errors a user can cause. Each message says what is wrong, where, and how to fix it."""

from __future__ import annotations


class LayerkitError(Exception):
    """Base of every mistake the kit reports; the CLI prints it on one line, without a traceback."""


class UnsupportedTargetError(LayerkitError):
    """A runtime or architecture that Lambda (or the kit) does not accept."""


class LayerSourceError(LayerkitError):
    """A layer folder that cannot become a working layer (no ``python/``, unreadable requirements...)."""


class MissingWheelError(LayerkitError):
    """A requirement has no binary wheel for the target runtime and platform."""


class BuildError(LayerkitError):
    """The installer failed for a reason other than a missing wheel."""


class AssemblyError(LayerkitError):
    """A cloud assembly (``cdk.out``) that is missing, corrupt or lacks what was asked for."""


class MissingInterpreterError(LayerkitError):
    """No Python of the exact version a function or a layer's bytecode needs."""


class InvokeError(LayerkitError):
    """A local invoke that could not start: bad event, missing interpreter, missing sandbox tool."""
