"""The Docker side of builds: is there a daemon, and a folder ``PythonLayerVersion`` / ``PythonFunction`` can
bundle so that the Lambda build image installs the same distributions the Docker-free build does.

Only ``docker info`` tells whether a daemon answers: the client alone (``docker --version``) is not enough.
The staged folder holds the code at its top and one ``requirements.txt``, whatever the folder declares its
dependencies in: the kit's reading of the declaration (a lock's pinned, hashed set; ``-r`` and ``-c`` includes
inlined; local wheels and local path packages copied into ``_layerkit/``, which the bundle drops), so the
image's pip installs what the local build installs. A token in an index URL stays a ``${VAR}`` reference,
expanded inside the container from the bundling environment.
"""

from __future__ import annotations

import functools
import hashlib
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

from layerkit import cache
from layerkit.sources import SourceFolder
from layerkit.sources.declaration import Declaration
from layerkit.uv import INDEX_SETTINGS

DOCKER_INFO_TIMEOUT_S = 20
#: The folder of the staged entry that holds what pip needs and the bundle must not keep.
EXTRAS = "_layerkit"
_ENV_VAR = re.compile(r"\$\{([A-Z0-9_]+)\}")


def docker_available() -> bool:
    """True when a ``docker`` client is on PATH and its daemon answers ``docker info``."""
    executable = shutil.which("docker")
    return executable is not None and _daemon_answers(executable)


@functools.cache
def _daemon_answers(executable: str) -> bool:
    # Cached per client path: a synth asks once per construct, and `docker info` takes a second when it fails.
    try:
        proc = subprocess.run(
            [executable, "info"], capture_output=True, timeout=DOCKER_INFO_TIMEOUT_S, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return proc.returncode == 0


@functools.cache
def image_unavailable(image: str) -> str | None:
    """None when ``image`` is in the engine (pulled now if need be), else why it cannot be had."""
    docker = shutil.which("docker") or "docker"
    if subprocess.run([docker, "image", "inspect", image], capture_output=True, check=False).returncode == 0:
        return None
    proc = subprocess.run([docker, "pull", "--quiet", image], capture_output=True, text=True, check=False)
    if proc.returncode == 0:
        return None
    lines = [line for line in proc.stderr.strip().splitlines() if line.strip()]
    return lines[-1] if lines else f"docker pull {image} failed"


def bundling_environment(source: SourceFolder) -> dict[str, str]:
    """What the bundling container needs from this machine's environment to reach a private index: pip's
    index settings (uv's, named as pip's) and every variable the declaration refers to as ``${VAR}``."""
    env = {}
    for pip_name, uv_name in INDEX_SETTINGS.items():
        if value := os.environ.get(pip_name) or os.environ.get(uv_name):
            env[pip_name] = value
    declaration = source.declaration
    if declaration is not None:
        for name in _ENV_VAR.findall(declaration.requirements_text()):
            if name in os.environ:
                env[name] = os.environ[name]
    return env


def stage(source: SourceFolder, asset_hash: str, cache_dir: Path) -> Path:
    """The folder to hand to ``PythonLayerVersion`` (``entry``) or ``PythonFunction``, staged by asset hash.

    ``PythonLayerVersion`` copies its whole entry into ``python/``: given ``layers/<name>/`` it would put the
    modules at ``python/python/<module>``, one level too deep for Lambda, so a layer's ``python/`` content is
    staged at the top.
    """
    def fill(folder: Path) -> dict[str, Any]:
        entry = folder / "entry"
        entry.mkdir()
        for path in source.code_files:
            dest = entry / path.relative_to(source.code_root)
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, dest)
        if source.declaration is not None and source.declaration.requirements:
            (entry / "requirements.txt").write_text(_staged_requirements(source.declaration, entry),
                                                    encoding="utf-8")
        _stage_kit_modules(entry / EXTRAS / "layerkit")
        return {"asset_hash": asset_hash}

    from layerkit.build import builder_version

    root = cache_dir / "staging" / hashlib.sha256(f"{asset_hash}\0{builder_version()}".encode()).hexdigest()
    cache.materialize(root, fill, required=("asset_hash",))
    return root / "entry"


#: The kit's modules the bundling container runs (``python -m layerkit.slim``): standard library only.
CONTAINER_MODULES = ("installed.py", "record.py", "elf.py", "slim.py")


def _stage_kit_modules(folder: Path) -> None:
    """The kit's slimming, as a package of its own for the container's Python."""
    folder.mkdir(parents=True)
    (folder / "__init__.py").write_text('"""The parts of layerkit the Docker builder runs in its container."""\n',
                                        encoding="utf-8")
    here = Path(__file__).parent
    for name in CONTAINER_MODULES:
        shutil.copyfile(here / name, folder / name)


def _staged_requirements(declaration: Declaration, entry: Path) -> str:
    """The declaration as one requirements file for pip in the container, local files copied beside it."""
    extras = entry / EXTRAS
    lines = []
    for option in declaration.options:
        flag, _, value = option.partition(" ")
        if flag == "--find-links" and "://" not in value:
            copied = extras / f"find-links-{len(lines)}"
            shutil.copytree(value, copied)
            option = f"--find-links ./{copied.relative_to(entry).as_posix()}"
        lines.append(option)
    if declaration.constraints:
        extras.mkdir(parents=True, exist_ok=True)
        (extras / "constraints.txt").write_text("\n".join(c.line() for c in declaration.constraints) + "\n",
                                                encoding="utf-8")
        lines.append(f"-c ./{EXTRAS}/constraints.txt")
    for requirement in declaration.requirements:
        line = requirement.line()
        if requirement.local is not None:
            kind = "packages" if requirement.local.is_dir() else "wheels"
            copied = extras / kind / requirement.local.name
            if requirement.local.is_dir():
                shutil.copytree(requirement.local, copied, ignore=shutil.ignore_patterns(
                    "__pycache__", "*.pyc", ".venv", "build", "dist", "*.egg-info", ".git"))
            else:
                copied.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(requirement.local, copied)
            marker = f" ; {requirement.marker}" if requirement.marker else ""
            line = " ".join([f"./{copied.relative_to(entry).as_posix()}{marker}",
                             *(f"--hash={h}" for h in requirement.hashes)])
        lines.append(line)
    return "\n".join(lines) + "\n"


def alpha_image_dir(cache_dir: Path) -> Path:
    """A folder with ``PythonLayerVersion``'s own Dockerfile, taken from the installed alpha package, so the kit
    can build that image with a network (the alpha builds it with Docker's default one)."""
    import tarfile

    from aws_cdk.aws_lambda_python_alpha import _jsii

    (tarball,) = Path(_jsii.__file__).parent.glob("*.jsii.tgz")

    def fill(folder: Path) -> dict[str, Any]:
        with tarfile.open(tarball) as archive:
            member = archive.extractfile("package/lib/docker/Dockerfile")
            if member is None:
                raise FileNotFoundError(f"{tarball} holds no lib/docker/Dockerfile")
            (folder / "image").mkdir()
            (folder / "image" / "Dockerfile").write_bytes(member.read())
        return {"from": tarball.name}

    entry = cache_dir / "images" / tarball.name.removesuffix(".jsii.tgz")
    cache.materialize(entry, fill, required=("from",))
    return entry / "image"
