"""The folder ``PythonLayerVersion`` / ``PythonFunction`` bundle, staged so that the Lambda build image installs
the same distributions the Docker-free build does.

The staged folder holds the code at its top and, in ``_layerkit/``, one ``requirements.txt``, whatever the
folder declares its dependencies in: the kit's reading of the declaration (a lock's pinned, hashed set; ``-r``
and ``-c`` includes inlined; local wheels and local path packages copied beside it, with paths relative to it),
and the kit's own modules the container runs. The bundle drops ``_layerkit/``. A token in an index URL stays a
``${VAR}`` reference, expanded inside the container from the bundling environment.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import tarfile
from pathlib import Path
from typing import Any

from layerkit.core import cache
from layerkit.core.cache_keys import builder_version
from layerkit.core.extraction import extract_zip
from layerkit.core.index_settings import IndexSettings
from layerkit.core.targets import Target
from layerkit.install import package_cache
from layerkit.installed.slim import Slim
from layerkit.sources import SourceFolder, copy_package, package_files
from layerkit.sources.declaration import Declaration

#: The folder of the staged entry that holds what the container needs and the bundle must not keep.
EXTRAS = "_layerkit"
#: The requirements the kit's hook installs, inside :data:`EXTRAS`: not at the top, where the alpha would run
#: its own pip on them (the kit's hook installs with the image's uv, from the download cache).
STAGED_REQUIREMENTS = Path(EXTRAS) / "requirements.txt"
#: The layout of a staged folder; part of its cache key, so that a new layout never reuses an old folder.
STAGING_FORMAT = 3
_ENV_VAR = re.compile(r"\$\{([A-Z0-9_]+)\}")


def bundling_environment(source: SourceFolder, given: dict[str, str] | None = None) -> dict[str, str]:
    """What the bundling container needs from this machine's environment (and the construct's own, ``given``) to
    reach a private index: the index settings as the local build reads them, under pip's names and uv's
    (:class:`~layerkit.core.index_settings.IndexSettings`), and every variable the declaration refers to as
    ``${VAR}``."""
    source_environment = {**os.environ, **(given or {})}
    env = {}
    declaration = source.declaration
    if declaration is not None:
        for name in _ENV_VAR.findall(declaration.requirements_text()):
            if name in source_environment:
                env[name] = source_environment[name]
    return {**env, **IndexSettings.of(source_environment).for_container()}


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
            (entry / EXTRAS).mkdir()
            (entry / STAGED_REQUIREMENTS).write_text(_staged_requirements(source.declaration, entry / EXTRAS),
                                                     encoding="utf-8")
        _stage_kit_modules(entry / EXTRAS / "layerkit")
        return {"asset_hash": asset_hash}


    key = f"{asset_hash}\0{builder_version()}\0staging {STAGING_FORMAT}"
    root = cache_dir / "staging" / hashlib.sha256(key.encode()).hexdigest()
    cache.materialize(root, fill, required=("asset_hash",))
    return root / "entry"


def cached_packages(source: SourceFolder, target: Target, slim: Slim, cache_dir: Path) -> tuple[Path, list[str]] | None:
    """The distributions of an exactly pinned declaration that the package cache holds for ``target`` (made by any
    earlier build: a local one, a matrix, a function), laid out as an installer leaves them, and their pins; None
    where it holds none. The bundling container is given them already installed: its uv installs only the rest,
    and nothing at all when every pin is there (it needs no network then)."""
    declaration = source.declaration
    if declaration is None or not declaration.requirements:
        return None
    recalled = package_cache.recall(declaration, target, source.destination, compiled=False, cache_dir=cache_dir,
                                    slim=slim)
    if not recalled or not recalled[0]:
        return None
    found = sorted(recalled[0], key=lambda p: p.name)
    key = "\0".join(["layerkit-docker-packages", builder_version(), *(p.entry.name for p in found)])

    def fill(folder: Path) -> dict[str, Any]:
        (folder / "site").mkdir()
        for package in found:
            extract_zip(package.entry / package_cache.MEMBERS, folder / "site", source.what, into="the bundle")
        return {"packages": [f"{p.name}=={p.version}" for p in found]}

    entry = cache_dir / "docker-packages" / hashlib.sha256(key.encode()).hexdigest()
    meta, _ = cache.materialize(entry, fill, required=("packages",))
    return entry / "site", list(meta["packages"])


def _stage_kit_modules(folder: Path) -> None:
    """The kit's lowest step, :mod:`layerkit.installed` (the standard library only, which its import contract
    checks), as the container's Python imports it: ``python -m layerkit.installed.slim``."""
    installed = Path(__file__).parents[1] / "installed"
    (folder / "installed").mkdir(parents=True, exist_ok=True)
    (folder / "__init__.py").write_text('"""The part of layerkit the Docker builder runs in its container."""\n',
                                        encoding="utf-8")
    for module in sorted(installed.glob("*.py")):
        shutil.copyfile(module, folder / "installed" / module.name)


def _staged_requirements(declaration: Declaration, extras: Path) -> str:
    """The declaration as one requirements file in ``extras``, local files copied beside it and named
    relative to it (the hook installs from that folder, so pip and uv read the paths alike)."""
    lines = []
    for option in declaration.options:
        flag, _, value = option.partition(" ")
        if flag == "--find-links" and "://" not in value:
            copied = extras / f"find-links-{len(lines)}"
            shutil.copytree(value, copied)
            option = f"--find-links ./{copied.relative_to(extras).as_posix()}"
        lines.append(option)
    if declaration.constraints:
        extras.mkdir(parents=True, exist_ok=True)
        (extras / "constraints.txt").write_text("\n".join(c.line() for c in declaration.constraints) + "\n",
                                                encoding="utf-8")
        lines.append("-c ./constraints.txt")
    for requirement in declaration.requirements:
        line = requirement.line()
        if requirement.local is not None:
            kind = "packages" if requirement.local.is_dir() else "wheels"
            copied = extras / kind / requirement.local.name
            if requirement.local.is_dir():
                # The files the local build makes its wheel from, by the same rules (never-deploy list, links).
                copy_package(requirement.local, package_files(requirement.local), copied)
            else:
                copied.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(requirement.local, copied)
            marker = f" ; {requirement.marker}" if requirement.marker else ""
            line = " ".join([f"./{copied.relative_to(extras).as_posix()}{marker}",
                             *(f"--hash={h}" for h in requirement.hashes)])
        lines.append(line)
    return "\n".join(lines) + "\n"


def alpha_image_dir(cache_dir: Path) -> Path:
    """A folder with ``PythonLayerVersion``'s own Dockerfile, taken from the installed alpha package, so the kit
    can build that image with a network (the alpha builds it with Docker's default one)."""
    # lazy: the alpha package loads the CDK and Node.js (seconds): only the Docker builder reads its Dockerfile
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
