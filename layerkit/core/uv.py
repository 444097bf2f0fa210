"""Running uv, the installer behind the Docker-free build: the one place its command lines are made.

Every command installs or resolves for the target, never for the interpreter running the kit: the runtime's
Python version, Lambda's Linux and the function's machine (``--python-version``, ``--python-platform``), binary
wheels only. uv does not read pip's settings, so a private index is handed to uv under its own names, as
:mod:`.index_settings` reads it, through the environment, never on a command line or in a file; netrc is read by uv
itself.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import os
import re
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from layerkit.core.errors import BuildError, CacheError, DeclarationError, MissingWheelError, redact
from layerkit.core.index_settings import IndexSettings
from layerkit.core.spelling import in_use
from layerkit.core.targets import Target
from layerkit.installed.distributions import canonical_name

if TYPE_CHECKING:
    import subprocess



@functools.cache
def binary() -> str:
    """The uv executable pinned by the project (the ``uv`` package), else one on PATH."""
    try:
        from uv import find_uv_bin  # lazy: the pinned uv package is found once, on first use

        return find_uv_bin()
    except (ImportError, FileNotFoundError):
        import shutil  # lazy: 7 ms, only where the pinned uv package is missing

        found = shutil.which("uv")
        if not found:
            raise BuildError("uv is not installed; run 'pip install uv' (or 'make setup')") from None
        return found


@functools.cache
def version() -> str:
    """uv's version: it decides the bytes of what it installs, so it is part of every cache key."""
    executable = Path(binary())
    # The pinned `uv` package names its version in its dist-info folder: no need to start uv on a cache hit.
    for site_dir in (Path(p) for p in sys.path if p.endswith("site-packages")):
        for info in site_dir.glob("uv-*.dist-info"):
            if executable.parent == Path(sys.prefix) / ("Scripts" if os.name == "nt" else "bin") \
                    or executable.is_relative_to(site_dir):
                return info.name.removeprefix("uv-").removesuffix(".dist-info")

    from layerkit.core import children  # lazy: a cache hit starts no child

    proc = children.run([str(executable), "--version"])
    return proc.stdout.split()[1]


#: Variables a construct gives its build (the alpha's ``BundlingOptions.environment``), for the build under way.
_OVERLAY: contextvars.ContextVar[dict[str, str] | None] = contextvars.ContextVar("layerkit_uv_overlay", default=None)


@contextlib.contextmanager
def environment_overlay(variables: dict[str, str] | None) -> Iterator[None]:
    """Give the uv children started inside the block ``variables`` too (index settings, a proxy)."""
    token = _OVERLAY.set({**(_OVERLAY.get() or {}), **(variables or {})})
    try:
        yield
    finally:
        _OVERLAY.reset(token)


#: The ``UV_*`` variables of the user's environment a uv child keeps: where the index is and how to reach it (the
#: documented index settings, a named index's credentials, TLS, timeouts, where uv keeps its cache). Any other
#: (``UV_CONSTRAINT``, ``UV_EXCLUDE_NEWER``, ``UV_PRERELEASE``, ``UV_LINK_MODE``...) would change what is installed
#: on one machine and not another: the kit sets what it needs itself.
KEPT_UV_SETTINGS = frozenset({"UV_INDEX_URL", "UV_EXTRA_INDEX_URL", "UV_DEFAULT_INDEX", "UV_INDEX", "UV_CACHE_DIR",
                              "UV_NATIVE_TLS", "UV_HTTP_TIMEOUT", "UV_REQUEST_TIMEOUT", "UV_KEYRING_PROVIDER",
                              "UV_INSECURE_HOST", "UV_CONCURRENT_DOWNLOADS", "UV_CONCURRENT_INSTALLS",
                              "UV_HTTP_RETRIES"})


def _kept(name: str) -> bool:
    return not name.startswith("UV_") or name in KEPT_UV_SETTINGS or (
        name.startswith("UV_INDEX_") and name.endswith(("_USERNAME", "_PASSWORD")))


def build_environment() -> dict[str, str]:
    """The environment a build sees: this process's, and the build's own (:func:`environment_overlay`)."""
    return {**os.environ, **(_OVERLAY.get() or {})}


def environment() -> dict[str, str]:
    """The environment of a uv child: the user's (and the build's own, :func:`environment_overlay`) without uv
    settings other than :data:`KEPT_UV_SETTINGS`, with the index settings under uv's names
    (:class:`~layerkit.core.index_settings.IndexSettings`), no Python downloads, and no configuration file read
    (``UV_NO_CONFIG``: neither the user's ``uv.toml`` nor the ``[tool.uv]`` of a ``pyproject.toml`` above the
    folder uv runs in): a build never depends on the folder it is started from."""
    source = build_environment()
    env = {name: value for name, value in source.items() if _kept(name)}
    env.update({"UV_PYTHON_DOWNLOADS": "never", "NO_COLOR": "1", "UV_NO_PROGRESS": "1", "UV_NO_CONFIG": "1"})
    if env.get("UV_CACHE_DIR") and not os.path.isabs(env["UV_CACHE_DIR"]):
        # Where the user meant it: uv runs in the declaration's folder, and would keep its cache inside the layer.
        env["UV_CACHE_DIR"] = os.path.abspath(env["UV_CACHE_DIR"])
    env.update(IndexSettings.of(source).for_uv())
    return env


def target_options(target: Target) -> list[str]:
    """Resolve and install for ``target``: the interpreter only runs the resolver."""
    return ["--python", sys.executable, "--python-version", target.python_version,
            "--python-platform", target.uv_platform, "--only-binary", ":all:"]


def _run(arguments: Sequence[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    from layerkit.core import children  # lazy: a cache hit starts no child

    return children.run([binary(), *arguments], cwd=cwd, env=environment())


def export_lock(project: Path) -> str:
    """``uv.lock`` as pinned, hashed requirements: main dependencies, no groups, no project itself."""
    proc = _run(["export", "--frozen", "--no-dev", "--no-emit-project", "--no-editable", "--no-header",
                 "--no-annotate", "--format", "requirements-txt", "--python", sys.executable, "--quiet"],
                project)
    if proc.returncode != 0:
        raise DeclarationError(f"{project / 'uv.lock'}: uv cannot read it: {_last_lines(proc.stderr)}; "
                               "run 'uv lock' in that folder")
    return proc.stdout


def compile_pins(requirements: Path, target: Target, *, cwd: Path, what: str,
                 constraints: Path | None = None) -> dict[str, str]:
    """The distributions (canonical name -> version) that installing ``requirements`` for ``target`` installs, as
    uv resolves them, without installing anything."""
    arguments = ["pip", "compile", str(requirements), *target_options(target), "--no-header", "--no-annotate",
                 "--quiet"]
    if constraints is not None:
        arguments += ["--constraints", str(constraints)]
    proc = _run(arguments, cwd)
    if proc.returncode != 0:
        raise install_error(what, target, proc.stderr)
    found = {}
    for line in proc.stdout.splitlines():
        line = line.split(";")[0].strip()
        name, separator, version = line.partition("==")
        if separator and name and not name.startswith("-"):
            found[canonical_name(name)] = version.strip()
        elif " @ " in line and line.endswith(".whl"):  # a local wheel: its file name holds its version
            wheel = line.rsplit("/", 1)[-1].split("-")
            if len(wheel) >= 5:
                found[canonical_name(line.split(" @ ", 1)[0])] = wheel[1]
    return found


def install(requirements: Path, destination: Path, target: Target, *, cwd: Path, what: str, no_deps: bool = False,
            hashes: bool = False, constraints: Path | None = None,
            offline_first: Sequence[tuple[str, str | None]] | None = None) -> None:
    """Install the requirements file ``requirements`` into ``destination`` for ``target``: resolved (or, with
    ``no_deps``, exactly the listed set, as a lock is), hash-checked when ``hashes``. With ``offline_first``, the
    ``(name, version)`` of a requirements file whose every line is pinned (version None: a file or URL), uv's
    cache is tried before the index when it holds a wheel of each of them; what it installs is kept only if the
    resolver chose nothing (no dependency left out of the pins), so that uv's cache never picks a version the
    index would not.

    Files are linked from uv's cache (its default): the kit never edits an installed file in place, it replaces.
    """
    arguments = ["pip", "install", "--requirements", str(requirements), "--target", str(destination),
                 *target_options(target),
                 "--no-compile",  # .pyc for the build machine's Python would be dead weight on Lambda
                 "--quiet"]
    if no_deps:
        arguments.append("--no-deps")
    if hashes:
        arguments.append("--require-hashes")
    if constraints is not None:
        arguments += ["--constraints", str(constraints)]
    if offline_first is not None and cache_holds(offline_first, cwd):
        if _run([*arguments, "--offline"], cwd).returncode == 0 and \
                (no_deps or _installed_names(destination) <= {name for name, _ in offline_first}):
            return

        import shutil  # lazy: 7 ms, only where an offline attempt left something

        shutil.rmtree(destination, ignore_errors=True)  # whatever the offline attempt left: start again
    proc = _run(arguments, cwd)
    if proc.returncode != 0:
        raise install_error(what, target, proc.stderr)


def _installed_names(site: Path) -> set[str]:
    """The normalized names of the distributions installed in ``site`` (from their ``.dist-info`` folders)."""
    return {canonical_name(entry.name.split("-")[0]) for entry in site.glob("*.dist-info")}


def cache_holds(pins: Sequence[tuple[str, str | None]], cwd: Path) -> bool:
    """Whether uv's cache holds a wheel of each ``(name, version)`` (``wheels-v*/<index>/<name>/<version>-*``):
    if one is missing, an offline attempt can only fail, and costs a uv start. A cache layout this does not
    recognise means going online: slower, never wrong."""
    wheels = list(_cache_dir(cwd).glob("wheels-v*"))
    indexes = [index for bucket in wheels for index in bucket.iterdir() if index.is_dir()]
    indexes += [nested for index in indexes if index.name == "index" for nested in index.iterdir()]
    return all(any(next((index / name).glob(f"{version}-*"), None) for index in indexes)
               for name, version in pins if version is not None)


def _cache_dir(cwd: Path) -> Path:
    """The folder uv keeps its cache in, as uv documents it (a child reads no configuration file): ``UV_CACHE_DIR``
    (made absolute by :func:`environment`), else ``$XDG_CACHE_HOME/uv``, else ``~/.cache/uv``. Worked out, not
    asked: a ``uv cache dir`` is a process started before every install."""
    env = environment()
    if given := env.get("UV_CACHE_DIR"):
        return cwd / given
    xdg = env.get("XDG_CACHE_HOME", "")
    return Path(xdg) / "uv" if os.path.isabs(xdg) else Path(env.get("HOME") or Path.home()) / ".cache" / "uv"


def build_wheel(package: Path, out_dir: Path, what: str, shown: Path | None = None) -> Path:
    """A wheel of the local path package ``package`` (its own build backend, in an isolated environment);
    ``shown`` is the folder messages name (``package`` may be a copy of it)."""
    proc = _run(["build", "--wheel", "--out-dir", str(out_dir), "--python", sys.executable, "--quiet",
                 str(package)], package)
    wheels = sorted(out_dir.glob("*.whl"))
    if proc.returncode != 0 or len(wheels) != 1:
        shown = shown or package
        raise BuildError(f"{what}: building the local package {shown} into a wheel failed: "
                         f"{_last_lines(proc.stderr)}; check that 'uv build --wheel {shown}' works")
    return wheels[0]


_HASH_MISMATCH = re.compile(r"Hash mismatch for `([^`]+)`")
_NO_WHEEL = re.compile(r"Wheels are required for `([^`]+)`|Because (\S+?)(?:==\S+)? has no (?:usable )?wheels"
                       r"|(\S+?)(?:==\S+)? has no wheels with a matching platform tag")
_NOT_FOUND = re.compile(r"Because (\S+?) was not found in the package registry"
                        r"|there (?:is|are) no versions? of (\S+?)(?:[=<>!~,]\S*)? and")


def _last_lines(stderr: str) -> str:
    lines = [line.strip() for line in stderr.strip().splitlines() if line.strip()]
    return redact(" ".join(lines))[-500:] or "no output"


def install_error(what: str, target: Target, stderr: str) -> Exception:
    """The one-line error for a failed resolve or install, with the fix, and never a credential."""
    if "No space left on device" in stderr or "os error 28" in stderr:
        return CacheError(f"{what}: the disk filled up while uv installed for {target} ({_last_lines(stderr)[-200:]}); "
                          "free some space, or point LAYERKIT_CACHE_DIR (and UV_CACHE_DIR) at a larger disk")
    if match := _NO_WHEEL.search(stderr):
        package = next(group for group in match.groups() if group)
        return MissingWheelError(
            f"{what}: {package} has no wheel for {target.runtime} on {target.platform_tag}; pin a version of "
            f"{package} that publishes a manylinux wheel for {target.machine} (see its files on PyPI), replace it, "
            f"or build with Docker, so that it compiles in the Lambda build image: {in_use().docker}"
        )
    if mismatch := _HASH_MISMATCH.search(stderr):
        return BuildError(
            f"{what}: the file downloaded for {mismatch.group(1)} does not match any of its --hash; if the new file "
            "is trusted, regenerate the hashes (uv pip compile --generate-hashes, or refresh the lock), otherwise "
            "check which index served it"
        )
    if "401 Unauthorized" in stderr or "403 Forbidden" in stderr:
        return BuildError(
            f"{what}: the package index refused the credentials ({_last_lines(stderr)}); set them in "
            "PIP_INDEX_URL / UV_INDEX_URL (https://user:token@host/simple) or in ~/.netrc"
        )
    if missing := _NOT_FOUND.search(stderr):
        unknown, no_such_version = missing.groups()
        fix = (f"check the spelling of {unknown}: the package index has no project of that name" if unknown else
               f"pin a version of {no_such_version} the package index has ('pip index versions {no_such_version}' "
               "lists them)")
        return BuildError(f"{what}: installing for {target} failed: {_last_lines(stderr).rstrip('.')}; {fix}")
    return BuildError(f"{what}: installing for {target} failed: {_last_lines(stderr)}")
