"""Shared fixtures: an isolated layer cache, the example app synthesized once, built layers."""

from __future__ import annotations

import os
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

import layerkit  # noqa: F401  (first: quiets the jsii Node.js banner before aws_cdk starts Node)
from layerkit.assemble.local_build import build_layer
from layerkit.core.targets import Target
from tests.package_index import PackageIndex

ROOT = Path(__file__).resolve().parents[1]
LAYERS = ROOT / "layers"


def app_context(**overrides: object) -> dict[str, object]:
    """The context ``cdk synth`` gives the example app (cdk.json's, its feature flags included), built locally."""
    import json

    context = json.loads((ROOT / "cdk.json").read_text())["context"]
    return {**context, "layerkit:builder": "local", **{key.replace("__", ":"): v for key, v in overrides.items()}}


def synth_messages(app: object) -> list[tuple[str, str, str]]:
    """``(construct path, level, text)`` of every annotation, as ``cdk synth`` reports them. With the recommended
    feature flags (cdk.json) an error fails the synth and lands in the validation report, which is read then."""
    import json

    try:
        assembly = app.synth()  # type: ignore[attr-defined]
    except RuntimeError as error:
        if "ValidationFailed" not in str(error):
            raise
        report = json.loads((Path(app.outdir) / "validation-report.json").read_text())  # type: ignore[attr-defined]
        return [("/" + construct["constructPath"], violation["severity"], violation["description"])
                for plugin in report["pluginReports"] if plugin["pluginName"] == "Construct Annotations"
                for violation in plugin["violations"] for construct in violation["violatingConstructs"]]
    return [(m.id, m.level.value.lower(), str(m.entry.data)) for stack in assembly.stacks for m in stack.messages]


@pytest.fixture(scope="session")
def kit_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A layerkit cache of this test session only, so no test trusts a build made outside it."""
    cache = tmp_path_factory.mktemp("layerkit-cache")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("LAYERKIT_CACHE_DIR", str(cache))
        yield cache


@pytest.fixture(scope="session")
def example(kit_cache: Path, tmp_path_factory: pytest.TempPathFactory):
    """The example app, built without Docker, synthesized once for the session."""
    from aws_cdk import App

    from app import build

    outdir = tmp_path_factory.mktemp("cdk.out")
    example = build(App(outdir=str(outdir), context=app_context()))
    example.app.synth()
    return example


@pytest.fixture(scope="session")
def layerkit_assembly(example) -> Path:
    """The plugin's assembly (layerkit.pytest_plugin) is the example app this session already synthesized."""
    return Path(example.app.outdir)


@pytest.fixture(scope="session")
def locked(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    """Three layer folders locked by uv, poetry and pipenv against the tests' own index (see lock_projects)."""
    from tests.lock_projects import LOCKED_ORJSON, NEWER_ORJSON, downloads, lock_all, publish
    from tests.package_index import PackageIndex, fill_wheelhouse

    work = tmp_path_factory.mktemp("locked")
    wheels = work / "wheels"
    publish(wheels, [f"orjson=={LOCKED_ORJSON}", "python-dateutil==2.9.0.post0", "six==1.17.0"])
    make_wheel(wheels, "kit-armonly", {"kit_armonly.py": "ARM = True\n"})
    make_wheel(wheels, "kit-devtool", {"kit_devtool.py": "DEV = True\n"})
    index = PackageIndex(wheels)
    projects = lock_all(work, index, wheels)
    publish(wheels, [f"orjson=={NEWER_ORJSON}"])  # a fresh resolution would now pick this one
    # What a laptop's `pip install -t python/` with Python 3.11 gets (a test installs it by hand).
    fill_wheelhouse(wheels, [f"orjson=={LOCKED_ORJSON}"], [("3.11", "x86_64-manylinux_2_17")], downloads())
    yield projects
    index.close()


def docker_unavailable(reason: str) -> None:
    """Skip a Docker test with how to enable it; in CI (LAYERKIT_REQUIRE_DOCKER=1) fail it instead."""
    if os.environ.get("LAYERKIT_REQUIRE_DOCKER") == "1":
        pytest.fail(f"{reason} (LAYERKIT_REQUIRE_DOCKER=1: the Docker tests must run)")
    pytest.skip(f"{reason}; to run the Docker tests, start Docker or run 'make docker-engine' as root on Debian")


@pytest.fixture(scope="session")
def docker_engine() -> str:
    """A Docker daemon that answers ``docker info``."""
    import shutil
    import subprocess

    docker = shutil.which("docker")
    if docker is None or subprocess.run([docker, "info"], capture_output=True, timeout=60).returncode != 0:
        docker_unavailable("no Docker daemon answers")
    return docker


@pytest.fixture(scope="session")
def lambda_images(docker_engine: str) -> dict[str, str]:
    """The AWS build and Lambda images for python3.13: the real ones where LAYERKIT_DOCKER_IMAGES=aws (pulled),
    else the stand-ins of docker/standins/build.sh, built once per engine."""
    import subprocess

    images = {"build": "public.ecr.aws/sam/build-python3.13", "lambda": "public.ecr.aws/lambda/python:3.13"}
    if os.environ.get("LAYERKIT_DOCKER_IMAGES") == "aws":
        for image in images.values():
            if subprocess.run([docker_engine, "pull", image], capture_output=True, timeout=1800).returncode != 0:
                docker_unavailable(f"cannot pull {image}")
        return images
    proc = subprocess.run(["bash", str(ROOT / "docker" / "standins" / "build.sh")], capture_output=True, text=True,
                          timeout=1800)
    if proc.returncode != 0:
        docker_unavailable(f"the stand-in images could not be built ({proc.stderr.strip()[-300:]})")
    return images


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "docker_engine" in getattr(item, "fixturenames", ()) or "lambda_images" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.docker)


@pytest.fixture(scope="session")
def python312() -> Path:
    from layerkit.core.interpreters import find_python

    return find_python("3.12")


def write(root: Path, files: dict[str, str | bytes]) -> Path:
    """A folder as a user would have it: each relative path with its text (or bytes); returns ``root``."""
    for rel, content in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            (root / rel).write_bytes(content)
        else:
            (root / rel).write_text(content)
    return root


def failure_reports(pytest_stdout: str) -> str:
    """What an inner pytest run printed for its failing tests, without its short summary: under ``CI=true`` pytest
    repeats each failure's whole message there, so a line counted in the whole output would be counted twice."""
    return pytest_stdout.split("short test summary info", 1)[0]


def extract(zip_path: Path, destination: Path) -> Path:
    with zipfile.ZipFile(zip_path) as archive:
        archive.extractall(destination)
    return destination


def make_wheel(folder: Path, name: str, files: dict[str, str], requires: tuple[str, ...] = (),
               version: str = "1.0", requires_python: str | None = None) -> Path:
    """A pure-Python wheel ``name`` ``version`` holding ``files``, for an index or ``--find-links``."""
    import base64
    import hashlib

    dist = f"{name.replace('-', '_')}-{version}"
    files = {
        **files,
        f"{dist}.dist-info/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"
        + (f"Requires-Python: {requires_python}\n" if requires_python else "")
        + "".join(f"Requires-Dist: {req}\n" for req in requires),
        f"{dist}.dist-info/WHEEL": "Wheel-Version: 1.0\nGenerator: tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    record = [
        f"{path},sha256={base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).rstrip(b'=').decode()},"
        f"{len(text.encode())}"
        for path, text in files.items()
    ]
    folder.mkdir(parents=True, exist_ok=True)
    wheel = folder / f"{dist}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        for path, text in files.items():
            archive.writestr(path, text)
        archive.writestr(f"{dist}.dist-info/RECORD", "\n".join([*record, f"{dist}.dist-info/RECORD,,"]) + "\n")
    return wheel


def run_isolated(python: Path, code: str, *paths: Path) -> tuple[int, str, str]:
    """Run ``code`` under ``python -I -S`` with only ``paths`` in front of the standard library."""
    import subprocess

    prelude = f"import sys; sys.path[:0] = {[str(p) for p in paths]!r}\n"
    proc = subprocess.run([str(python), "-I", "-S", "-c", prelude + code], capture_output=True, text=True,
                          env={"PATH": os.environ.get("PATH", "")}, timeout=120)
    return proc.returncode, proc.stdout, proc.stderr


sys.path.insert(0, str(ROOT))


_SKIPPED_DOCKER_TESTS: list[str] = []


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.skipped and "docker" in report.keywords:
        _SKIPPED_DOCKER_TESTS.append(report.nodeid)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """In CI the Docker tests must run: a skipped one fails the session (a green run would hide it)."""
    if os.environ.get("LAYERKIT_REQUIRE_DOCKER") == "1" and _SKIPPED_DOCKER_TESTS:
        print(f"\nLAYERKIT_REQUIRE_DOCKER=1 but {len(_SKIPPED_DOCKER_TESTS)} Docker test(s) were skipped: "
              f"{', '.join(_SKIPPED_DOCKER_TESTS[:5])}", file=sys.stderr)
        session.exitstatus = 1


#: The engines make docker-engine runs (docker/engine.sh): a user's Docker, with its bridge, and one without.
BRIDGE_ENGINE = "unix:///run/layerkit-docker/docker.sock"
NO_BRIDGE_ENGINE = "unix:///var/run/docker.sock"


@pytest.fixture(params=["with a bridge", "without a bridge"])
def either_engine(request, monkeypatch, lambda_images) -> str:
    """The test runs once on an engine with Docker's default bridge network and once on one without (a rootless or
    --bridge=none Docker), each with the stand-in images; the engine's DOCKER_HOST."""
    import subprocess

    wanted = request.param == "with a bridge"
    for host in dict.fromkeys([os.environ.get("DOCKER_HOST", NO_BRIDGE_ENGINE), BRIDGE_ENGINE, NO_BRIDGE_ENGINE]):
        env = {**os.environ, "DOCKER_HOST": host}
        if subprocess.run(["docker", "info"], env=env, capture_output=True, timeout=60).returncode != 0:
            continue
        bridge = subprocess.run(["docker", "network", "inspect", "bridge"], env=env, capture_output=True,
                                timeout=60).returncode == 0
        if bridge == wanted:
            built = subprocess.run(["bash", str(ROOT / "docker" / "standins" / "build.sh")], env=env,
                                   capture_output=True, text=True, timeout=1800)
            if built.returncode != 0:
                docker_unavailable(f"the stand-in images could not be had in {host} ({built.stderr[-300:]})")
            monkeypatch.setenv("DOCKER_HOST", host)
            return host
    docker_unavailable(f"no Docker engine {request.param} answers (make docker-engine starts one of each)")
    raise AssertionError("unreachable")


@pytest.fixture(scope="module", params=["x86_64", "arm64"])
def my_layer(request, kit_cache):
    return build_layer(LAYERS / "my_layer", Target("python3.12", request.param), cache_dir=kit_cache)


@pytest.fixture
def private_index(tmp_path):
    make_wheel(tmp_path / "private-wheels", "kit-private", {"kit_private.py": "SECRET = 'in a wheel'\n"})
    index = PackageIndex(tmp_path / "private-wheels", credentials=("ci", "token-one"))
    yield index
    index.close()
