"""The pytest plugin (entry point ``pytest11``, name ``layerkit``): test your functions with their layers, as
they deploy, from your own tests. Installing layerkit is all it takes::

    def test_order_total(layerkit_invoke):
        result = layerkit_invoke("my-app-orders/Function", {"order_id": "A-1", "lines": []})
        assert result.error is None
        assert result.payload["total"] == "0.00"
        assert result.report["max_memory_used_mb"] < 128

Fixtures:

- ``layerkit_assembly`` (session): the cloud assembly of the app in the test run's folder (its ``cdk.json``),
  synthesized once per session into a temporary folder, with the app's CDK CLI (:mod:`layerkit.assembly.synth`);
  or the one given with ``--layerkit-assembly PATH``. An assembly with a ``layerkit.check`` error fails every test
  that uses it, naming the error. Override it in a ``conftest.py`` to synthesize another way.
- ``layerkit_invoke(function_id, event=None, *, env=None, timeout=None, backend=None, network=None,
  layers_from=(), layers=None)``: invoke the
  function exactly as ``layerkit invoke`` does and return its
  :class:`~layerkit.invoke.result.Invocation`: ``payload`` (the decoded response), ``error`` (``(type,
  message)`` or None), ``logs`` (the function's output) and ``report`` (the REPORT figures). One warm environment
  per function (and options) serves the whole session, as Lambda reuses one; the function's output and Lambda's
  log lines go to stderr, which pytest shows for a failing test. A folder changed since the synth, or a variable
  CloudFormation fills in at deploy, is a :class:`LayerkitWarning` in pytest's warnings summary, as
  ``layerkit invoke`` says it on stderr (:mod:`layerkit.invoke.preparation`).

Options: ``--layerkit-assembly PATH``, ``--layerkit-backend auto|sandbox|docker`` (default ``auto``),
``--layerkit-network sandbox|host|none`` (default ``sandbox``).
"""

from __future__ import annotations

import contextlib
import json
import sys
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import pytest

from layerkit.core.errors import InvokeError, LayerkitError, SynthError

if TYPE_CHECKING:
    from layerkit.assembly import Assembly
    from layerkit.invoke.result import Invocation

#: Why the kit's own imports here wait for a fixture: pytest loads this plugin in every test run of every project
#: that installs layerkit, most of which never ask for a fixture (about 70 ms).
_LAZY = "the plugin loads in every pytest run of a project with layerkit installed"

_T = TypeVar("_T")


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("layerkit", "invoke Lambda functions with their layers (layerkit)")
    group.addoption("--layerkit-assembly", metavar="PATH", default=None,
                    help="a synthesized cloud assembly (default: synthesize the app of cdk.json once per session)")
    group.addoption("--layerkit-backend", default="auto", choices=["auto", "sandbox", "docker"],
                    help="where functions run (default: auto, Docker where it answers, else the sandbox)")
    group.addoption("--layerkit-network", default="sandbox", choices=["sandbox", "host", "none"],
                    help="the sandbox's network (default: sandbox, the internet but never this machine)")


@pytest.fixture(scope="session")
def layerkit_assembly(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The app's cloud assembly: ``--layerkit-assembly``, or the app of ``cdk.json`` synthesized once."""
    given = request.config.getoption("--layerkit-assembly")
    if given:
        return Path(given)
    from layerkit.assembly.synth import synthesize  # lazy: see _LAZY

    return _or_fail(lambda: synthesize(Path(request.config.rootpath), tmp_path_factory.mktemp("layerkit-cdk.out"),
                                       echo=lambda line: print(line, file=sys.stderr, flush=True)))


def _or_fail(action: Callable[[], _T]) -> _T:
    """What ``action`` returns; a mistake of the kit's fails the test with its one line (no traceback, and none of
    the exception it was raised from)."""
    try:
        return action()
    except LayerkitError as error:
        message = _told(error)
    pytest.fail(message, pytrace=False)


def _told(error: LayerkitError) -> str:
    """The kit's error as the test's failure: one line, or for a synth each mistake of the app on its own line
    (as cdk synth prints them) and then the error's."""
    mistakes = error.mistakes if isinstance(error, SynthError) else []  # each told again: pytest kept the output
    return "\n".join([*(f"layerkit: {mistake}" for mistake in mistakes), f"layerkit: {error}"])


class _Environments:
    """One open execution environment per function and options, for the whole session."""

    def __init__(self) -> None:
        self._stack = contextlib.ExitStack()
        self._open: dict[tuple[Any, ...], Any] = {}

    def get(self, key: tuple[Any, ...], opener: Callable[[], Any]) -> Any:
        if key not in self._open:
            self._open[key] = self._stack.enter_context(opener())
        return self._open[key]

    def close(self) -> None:
        self._stack.close()


@pytest.fixture(scope="session")
def _layerkit_environments() -> Iterator[_Environments]:
    environments = _Environments()
    yield environments
    environments.close()


@pytest.fixture(scope="session")
def _layerkit_loaded(layerkit_assembly: Path) -> Assembly:
    from layerkit.assembly import Assembly  # lazy: see _LAZY

    assembly = _or_fail(lambda: Assembly.load(layerkit_assembly))
    if errors := assembly.errors():
        pytest.fail(_told(SynthError(f"the app has {len(errors)} error(s) at synth", [f"ERROR {e}" for e in errors])),
                    pytrace=False)
    return assembly


def _payload(event: Any) -> bytes:
    """The event as Lambda receives it: JSON text in UTF-8 (bytes and strings as given, anything else encoded), or
    the kit's one-line error saying why it cannot be."""
    from layerkit.invoke.events import check_event  # lazy: see _LAZY

    if event is None:
        return b"{}"
    if isinstance(event, bytes | bytearray):
        payload = bytes(event)
    elif isinstance(event, str):
        try:
            payload = event.encode("utf-8")
        except UnicodeEncodeError as error:
            raise InvokeError(f"the event is not UTF-8 text ({error.reason} at character {error.start}); an event is "
                              "a JSON document in UTF-8") from None
    else:
        try:
            payload = json.dumps(event, allow_nan=False).encode("utf-8")
        except ValueError:
            raise InvokeError("the event holds NaN or Infinity, numbers JSON cannot write; use None or a string") \
                from None
        except TypeError as error:
            raise InvokeError(f"the event cannot be written as JSON ({error}); use dicts, lists, strings, numbers, "
                              "booleans and None") from None
        except RecursionError:
            raise InvokeError("the event is nested deeper than JSON can be written; flatten it") from None
    check_event(payload, "the event")
    return payload


class LayerkitWarning(UserWarning):
    """What a user must hear before trusting an invoke's answer: a folder changed since the synth, a variable that
    has no local value. pytest lists them in its warnings summary."""


@pytest.fixture
def layerkit_invoke(request: pytest.FixtureRequest, _layerkit_loaded: Assembly,
                    _layerkit_environments: _Environments) -> Callable[..., Invocation]:
    """``layerkit_invoke(function_id, event=None, *, env=None, timeout=None, backend=None, network=None)``."""

    def invoke(function_id: str, event: Any = None, *, env: dict[str, str] | None = None,
               timeout: float | None = None, backend: str | None = None, network: str | None = None,
               layers_from: tuple[str, ...] = (), layers: dict[str, str] | None = None) -> Invocation:
        backend = backend or request.config.getoption("--layerkit-backend")
        network = network or request.config.getoption("--layerkit-network")
        payload = _or_fail(lambda: _payload(event))
        key = (function_id, backend, network, timeout, tuple(sorted((env or {}).items())), tuple(layers_from),
               tuple(sorted((layers or {}).items())))

        def opener() -> Any:
            from layerkit.core.spelling import IN_PYTEST, speaking  # lazy: see _LAZY
            from layerkit.invoke.preparation import prepare  # lazy: see _LAZY
            from layerkit.invoke.session import open_environment  # lazy: see _LAZY

            with speaking(IN_PYTEST):
                function = prepare(_layerkit_loaded, function_id, env_overrides=env, layers_from=layers_from,
                                   layer_paths={k: Path(v) for k, v in (layers or {}).items()},
                                   warn=lambda line: warnings.warn(line, LayerkitWarning, stacklevel=1))
            return open_environment(function, backend=backend, env_overrides=env, timeout_s=timeout,
                                    network=network, log=lambda line: print(line, file=sys.stderr, flush=True))

        return _or_fail(lambda: _layerkit_environments.get(key, opener).invoke(payload))

    return invoke
