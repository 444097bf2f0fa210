"""Every way a project declares its dependencies builds the right layer, and none is ever silently lost.

Lock files are made by the real tools (uv, poetry, pipenv) against the tests' own index (see lock_projects);
requirements files exercise what pip reads: encodings, includes, options, hashes, markers, local files.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from layerkit.assemble.local_build import build_layer
from layerkit.core.errors import DeclarationError, LayerkitError, LayerSourceError, NativeCodeError
from layerkit.core.targets import Target
from layerkit.docker.staging import stage
from layerkit.sources import SourceFolder
from tests.conftest import extract, make_wheel, run_isolated
from tests.lock_projects import LOCKED_ORJSON, NEWER_ORJSON
from tests.package_index import PackageIndex

ELF_MACHINES = {62: "x86_64", 183: "arm64"}
LOCKED = ["orjson==3.10.16", "python-dateutil==2.9.0.post0", "six==1.17.0"]


def quiet(_: str) -> None:
    pass


def layer_folder(root: Path, files: dict[str, str | bytes]) -> Path:
    (root / "python").mkdir(parents=True, exist_ok=True)
    for name, content in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content.encode() if isinstance(content, str) else content)
    return root


def names_in(build) -> list[str]:
    with zipfile.ZipFile(build.zip) as archive:
        return archive.namelist()


def elf_machine(data: bytes) -> str:
    assert data[:4] == b"\x7fELF"
    return ELF_MACHINES[int.from_bytes(data[18:20], "little" if data[5] == 1 else "big")]


def copy_project(project: Path, destination: Path) -> Path:
    return Path(shutil.copytree(project, destination / project.name, ignore=shutil.ignore_patterns(".venv")))


def one_line_cli_error(layer: Path, cache: Path, arch: str = "x86_64") -> str:
    proc = subprocess.run([sys.executable, "-m", "layerkit.cli", "build", str(layer), "--runtime", "python3.12",
                           "--arch", arch, "--cache-dir", str(cache)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("layerkit: error:")]
    assert len(errors) == 1, proc.stderr
    assert proc.stderr.rstrip("\n").endswith(errors[0]), proc.stderr
    return errors[0]


def assert_nothing_built(cache: Path) -> None:
    builds = cache / "builds"
    assert not builds.exists() or [p for p in builds.iterdir() if not p.name.endswith(".lock")] == []
    assert [p for p in cache.glob("**/.tmp-*") if not p.name.endswith(".lock")] == []


# -- lock files ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("arch", ["x86_64", "arm64"])
@pytest.mark.parametrize("tool", ["uv", "poetry", "pipenv"])
def test_a_locked_layer_holds_exactly_the_locked_versions_for_the_target(locked, tool, arch, tmp_path):
    project = getattr(locked, tool)
    build = build_layer(project, Target("python3.12", arch), cache_dir=tmp_path / "cache", report=quiet)
    # The index now offers orjson 3.10.18: the lock's 3.10.16 is installed, never a fresh resolution. The dev
    # group's kit-devtool is not; kit-armonly is, on arm64 only, whatever this machine is.
    expected = sorted([*LOCKED, *(["kit-armonly==1.0"] if arch == "arm64" else [])])
    assert build.packages == expected
    names = names_in(build)
    assert f"python/orjson-{LOCKED_ORJSON}.dist-info/METADATA" in names
    assert not [n for n in names if "kit_devtool" in n or n.startswith("python/bin/")]
    with zipfile.ZipFile(build.zip) as archive:
        shared_objects = [n for n in names if n.endswith(".so")]
        assert shared_objects
        for name in shared_objects:
            assert ".cpython-312-" in name, name
            assert elf_machine(archive.read(name)) == arch, name


def test_a_locked_layer_imports_under_the_runtime_python(locked, tmp_path, python312):
    build = build_layer(locked.uv, Target("python3.12", "x86_64"), cache_dir=tmp_path / "cache", report=quiet)
    root = extract(build.zip, tmp_path / "layer")
    code, out, err = run_isolated(python312, "import orjson, uv_layer, dateutil\nprint(orjson.__version__, "
                                             "uv_layer.dumps({'a': 1}).decode())", root / "python")
    assert code == 0, err
    assert out.split() == [LOCKED_ORJSON, '{"a":1}']


@pytest.mark.parametrize(("tool", "edited", "fix"), [
    ("uv", "pyproject.toml", "run 'uv lock' in that folder"),
    ("poetry", "pyproject.toml", "run 'poetry lock' in that folder"),
    ("pipenv", "Pipfile", "run 'pipenv lock' in that folder"),
])
def test_a_lock_out_of_date_with_its_project_is_refused_with_the_command_that_refreshes_it(
        locked, tool, edited, fix, tmp_path):
    project = copy_project(getattr(locked, tool), tmp_path)
    text = (project / edited).read_text()
    (project / edited).write_text(text.replace("python-dateutil", "python-slugify").replace(
        '"python-slugify<3"', '"python-slugify<9"'))
    with pytest.raises(DeclarationError, match="out of date with") as error:
        build_layer(project, Target("python3.12", "x86_64"), cache_dir=tmp_path / "cache", report=quiet)
    assert fix in str(error.value)
    message = one_line_cli_error(project, tmp_path / "cache")
    lock = {"uv": "uv.lock", "poetry": "poetry.lock", "pipenv": "Pipfile.lock"}[tool]
    assert fix in message
    assert message.endswith(f"and commit the new {lock}")
    assert_nothing_built(tmp_path / "cache")


@pytest.mark.parametrize("tool", ["uv", "poetry", "pipenv"])
def test_the_docker_builder_is_handed_the_same_distributions(locked, tool, tmp_path):
    """PythonLayerVersion gets one requirements.txt (in _layerkit/, which the kit's hook installs): the lock's own
    pins and hashes, markers for the image's installer."""
    from packaging.requirements import Requirement

    project = getattr(locked, tool)
    for arch in ("x86_64", "arm64"):
        target = Target("python3.12", arch)
        build = build_layer(project, target, cache_dir=tmp_path / "cache", report=quiet)
        source = SourceFolder.layer(project)
        staged = stage(source, source.fingerprint(target, bytecode=True), tmp_path / "cache")
        lines = [line for line in (staged / "_layerkit" / "requirements.txt").read_text().splitlines()
                 if not line.startswith("-")]
        environment = {**target.marker_environment(), "extra": ""}
        pinned = sorted(
            f"{r.name}{r.specifier}" for r in (Requirement(line.split(" --hash")[0]) for line in lines)
            if r.marker is None or r.marker.evaluate(environment)
        )
        assert pinned == build.packages
        assert all("--hash=sha256:" in line for line in lines)
        assert sorted(p.name for p in staged.iterdir()) == sorted(["_layerkit", f"{project.name}.py"])


def test_a_pyproject_without_a_lock_is_resolved_for_the_target_with_the_unpinned_warning(locked, tmp_path):
    layer = layer_folder(tmp_path / "pep621", {"pyproject.toml": f"""
[project]
name = "pep621"
version = "0"
dependencies = ["orjson<3.11"]

[tool.uv]
index-url = "{locked.index.url()}"
"""})
    # uv's [tool.uv] settings are not read by the kit: the index comes from the environment here.
    env = {"UV_INDEX_URL": locked.index.url()}
    os.environ.update(env)
    try:
        build = build_layer(layer, Target("python3.12", "x86_64"), cache_dir=tmp_path / "cache", report=quiet)
    finally:
        for key in env:
            os.environ.pop(key)
    assert build.packages == [f"orjson=={NEWER_ORJSON}"]
    assert build.warnings == [
        "layer pep621: requirement 'orjson<3.11' is not pinned to one version (pyproject.toml [project] dependencies); "
        "pin it (e.g. 'name==1.2.3') or lock it, so that every build installs the same code"
    ]


def test_an_empty_dependency_list_is_a_layer_of_code_only(tmp_path):
    layer = layer_folder(tmp_path / "pure", {"python/m.py": "X = 1\n", "pyproject.toml":
                                             '[project]\nname = "pure"\nversion = "0"\ndependencies = []\n'})
    build = build_layer(layer, Target("python3.12", "x86_64"), cache_dir=tmp_path / "cache", report=quiet,
                        bytecode=False)
    assert build.packages == []
    assert [n for n in names_in(build) if not n.endswith("/")] == ["python/m.py"]


# -- requirements.txt as pip reads it --------------------------------------------------------------------
def test_an_included_requirements_file_is_installed(locked, tmp_path):
    # The seed's first report: a requirements.txt whose only line is -r base.txt gave a layer with no dependency.
    layer = layer_folder(tmp_path / "include", {
        "requirements.txt": "-r base.txt\n",
        "base.txt": f"--index-url {locked.index.url()}\norjson=={NEWER_ORJSON}\n",
    })
    build = build_layer(layer, Target("python3.12", "x86_64"), cache_dir=tmp_path / "cache", report=quiet)
    assert build.packages == [f"orjson=={NEWER_ORJSON}"]
    assert "python/orjson/__init__.py" in names_in(build)


def test_includes_and_constraints_are_read_relative_to_the_file_that_names_them(locked, tmp_path):
    layer = layer_folder(tmp_path / "nested", {
        "requirements.txt": "# dependencies live in deps/\n-r deps/main.txt  # comment after an option\n",
        "deps/main.txt": f"-i {locked.index.url()}\n-c ../constraints/pins.txt\norjson<3.11\npython-dateutil \\\n"
                         "  <3\n",
        "constraints/pins.txt": f"orjson=={LOCKED_ORJSON}\n",
    })
    build = build_layer(layer, Target("python3.12", "x86_64"), cache_dir=tmp_path / "cache", report=quiet)
    assert build.packages == LOCKED  # the constraint holds orjson at 3.10.16 though 3.10.18 is offered


@pytest.mark.parametrize("encoding", ["utf-16", "utf-8-sig"], ids=["utf-16-bom-powershell", "utf-8-bom"])
def test_a_requirements_file_with_a_byte_order_mark_is_read(locked, tmp_path, encoding):
    text = f"--index-url {locked.index.url()}\r\norjson=={LOCKED_ORJSON}\r\n"
    layer = layer_folder(tmp_path / "bom", {"requirements.txt": text.encode(encoding)})
    build = build_layer(layer, Target("python3.12", "x86_64"), cache_dir=tmp_path / "cache", report=quiet)
    assert build.packages == [f"orjson=={LOCKED_ORJSON}"]


def test_a_requirements_file_in_another_encoding_is_one_clear_error(tmp_path):
    layer = layer_folder(tmp_path / "latin", {"requirements.txt": "six==1.17.0  # caf\xe9\n".encode("latin-1")})
    message = one_line_cli_error(layer, tmp_path / "cache")
    assert message.endswith("requirements.txt: not UTF-8 text (nor UTF-16 with a byte order mark); save it as UTF-8")


@pytest.mark.parametrize("arch", ["x86_64", "arm64"])
def test_markers_are_evaluated_for_the_target_not_this_machine(locked, tmp_path, arch):
    layer = layer_folder(tmp_path / "markers", {"requirements.txt": (
        f"--index-url {locked.index.url()}\n"
        'kit-armonly==1.0 ; platform_machine == "aarch64"\n'
        'six==1.17.0 ; sys_platform == "linux" and python_version >= "3.12"\n'
        'kit-devtool==1.0 ; sys_platform == "darwin"\n'
    )})
    build = build_layer(layer, Target("python3.12", arch), cache_dir=tmp_path / "cache", report=quiet)
    assert build.packages == (["kit-armonly==1.0", "six==1.17.0"] if arch == "arm64" else ["six==1.17.0"])


def test_a_local_wheel_is_installed_from_its_path(tmp_path):
    layer = layer_folder(tmp_path / "wheels_layer", {"requirements.txt": "./wheels/kit_local-1.0-py3-none-any.whl\n"})
    make_wheel(layer / "wheels", "kit-local", {"kit_local.py": "X = 1\n"})
    build = build_layer(layer, Target("python3.12", "x86_64"), cache_dir=tmp_path / "cache", report=quiet)
    assert build.packages == ["kit-local==1.0"]
    names = names_in(build)
    assert "python/kit_local.py" in names
    # Where the wheel sat on this machine (direct_url.json) is not part of the layer.
    assert not [n for n in names if n.endswith("direct_url.json") or "/wheels/" in n]


def test_a_local_path_package_is_built_into_a_wheel_not_copied_as_source(tmp_path):
    lib = tmp_path / "repo" / "shared" / "kitlib"
    layer_folder(lib, {
        "pyproject.toml": '[build-system]\nrequires = ["flit_core>=3.9,<4"]\nbuild-backend = "flit_core.buildapi"\n\n'
                          '[project]\nname = "kitlib"\nversion = "0.1"\ndescription = "helpers"\n',
        "kitlib/__init__.py": '"""Shared helpers."""\nANSWER = 42\n',
    })
    layer = layer_folder(tmp_path / "repo" / "layers" / "uses_lib", {"requirements.txt": "../../shared/kitlib\n"})
    build = build_layer(layer, Target("python3.12", "x86_64"), cache_dir=tmp_path / "cache", report=quiet)
    assert build.packages == ["kitlib==0.1"]
    names = names_in(build)
    assert {"python/kitlib/__init__.py", "python/kitlib-0.1.dist-info/RECORD"} <= set(names)
    assert not [n for n in names if n.endswith("pyproject.toml")]
    # Its files are inputs of the layer: an edit there is a new asset.
    (lib / "kitlib" / "__init__.py").write_text('"""Shared helpers."""\nANSWER = 43\n')
    edited = build_layer(layer, Target("python3.12", "x86_64"), cache_dir=tmp_path / "cache", report=quiet)
    assert (edited.cache, edited.asset_hash != build.asset_hash) == ("miss", True)


def test_every_file_that_decides_the_layer_is_in_its_asset_hash(locked, tmp_path):
    layer = layer_folder(tmp_path / "inputs", {
        "requirements.txt": "-r base.txt\n-c pins.txt\n./wheels/kit_local-1.0-py3-none-any.whl\n",
        "base.txt": f"--index-url {locked.index.url()}\norjson<3.11\n",
        "pins.txt": f"orjson=={LOCKED_ORJSON}\n",
    })
    make_wheel(layer / "wheels", "kit-local", {"kit_local.py": "X = 1\n"})
    target, cache = Target("python3.12", "x86_64"), tmp_path / "cache"
    first = build_layer(layer, target, cache_dir=cache, report=quiet, bytecode=False)
    for path in layer.rglob("*"):  # touching files changes nothing
        os.utime(path, (1, 1))
    assert build_layer(layer, target, cache_dir=cache, report=quiet, bytecode=False).cache == "hit"
    hashes = {first.asset_hash}
    for name, edit in [("base.txt", b"orjson<3.11  # edited\n"), ("pins.txt", b"orjson==3.10.16\n\n"),
                       ("wheels/kit_local-1.0-py3-none-any.whl", None)]:
        if edit is None:
            make_wheel(layer / "wheels", "kit-local", {"kit_local.py": "X = 2\n"})
        else:
            (layer / name).write_bytes((layer / name).read_bytes().split(b"\n")[0] + b"\n" + edit)
        hashes.add(build_layer(layer, target, cache_dir=cache, report=quiet, bytecode=False).asset_hash)
    assert len(hashes) == 4


@pytest.mark.parametrize("tool", ["uv", "poetry", "pipenv"])
def test_a_lock_file_is_in_the_asset_hash(locked, tool, tmp_path):
    project = copy_project(getattr(locked, tool), tmp_path)
    before = SourceFolder.layer(project).fingerprint(Target("python3.12", "x86_64"), bytecode=True)
    lock = next(p for p in project.iterdir() if p.name in ("uv.lock", "poetry.lock", "Pipfile.lock"))
    lock.write_text(lock.read_text() + "\n")
    assert SourceFolder.layer(project).fingerprint(Target("python3.12", "x86_64"), bytecode=True) != before


# -- private indexes ------------------------------------------------------------------------------------
@pytest.fixture
def private_index(tmp_path):
    make_wheel(tmp_path / "private-wheels", "kit-private", {"kit_private.py": "SECRET = 'in a wheel'\n"})
    index = PackageIndex(tmp_path / "private-wheels", credentials=("ci", "token-one"))
    yield index
    index.close()


@pytest.mark.parametrize("setting", ["PIP_INDEX_URL", "UV_INDEX_URL", "PIP_EXTRA_INDEX_URL", "UV_EXTRA_INDEX_URL"])
def test_a_rotated_index_token_keeps_the_asset_hash_and_the_cache_entry(private_index, tmp_path, monkeypatch,
                                                                        setting):
    layer = layer_folder(tmp_path / "private", {"requirements.txt": "kit-private==1.0\n",
                                                "python/uses.py": "import kit_private\n"})
    target, cache = Target("python3.12", "x86_64"), tmp_path / "cache"
    monkeypatch.setenv(setting, private_index.url(("ci", "token-one")))
    first = build_layer(layer, target, cache_dir=cache, report=quiet)
    assert first.packages == ["kit-private==1.0"]
    private_index.credentials = ("ci", "token-two")  # CodeArtifact-style rotation
    monkeypatch.setenv(setting, private_index.url(("ci", "token-two")))
    second = build_layer(layer, target, cache_dir=cache, report=quiet)
    assert (second.cache, second.asset_hash, second.sha256) == ("hit", first.asset_hash, first.sha256)
    assert build_layer(layer, target, cache_dir=tmp_path / "fresh", report=quiet).sha256 == first.sha256
    for path in [p for p in [*cache.rglob("*"), *(tmp_path / "fresh").rglob("*")] if p.is_file()]:
        assert b"token-" not in path.read_bytes(), path


def test_a_token_written_into_the_file_is_warned_of_and_never_decides_the_asset(private_index, tmp_path):
    layer = layer_folder(tmp_path / "private", {"python/uses.py": "import kit_private\n"})

    def build_with(token: str):
        (layer / "requirements.txt").write_text(f"six==1.17.0\n--extra-index-url {private_index.url(('ci', token))}\n"
                                                "kit-private==1.0\n")
        return build_layer(layer, Target("python3.12", "x86_64"), cache_dir=tmp_path / "cache", report=quiet)

    first = build_with("token-one")
    assert first.packages == ["kit-private==1.0", "six==1.17.0"]
    (warning,) = first.warnings
    assert warning == (
        f"layer private: requirements.txt:2 writes a credential into a URL (http://***@127.0.0.1:{private_index.port}"
        "/simple/), where everyone who reads the file reads it; put the URL in the environment (PIP_INDEX_URL, "
        "UV_INDEX_URL) or write ${VAR} in the credential's place (the installer expands it): it never enters the "
        "asset hash either way")
    private_index.credentials = ("ci", "token-two")  # the token rotates, and the file is edited to match
    second = build_with("token-two")
    assert (second.asset_hash, second.cache) == (first.asset_hash, "hit")
    for path in [p for p in (tmp_path / "cache").rglob("*") if p.is_file()]:
        assert b"token-" not in path.read_bytes(), path


def test_a_refused_token_is_one_line_that_never_shows_it(private_index, tmp_path, monkeypatch):
    layer = layer_folder(tmp_path / "private", {"requirements.txt": "kit-private==1.0\n"})
    monkeypatch.setenv("PIP_INDEX_URL", private_index.url(("ci", "expired-token")))
    message = one_line_cli_error(layer, tmp_path / "cache")
    assert "the package index refused the credentials" in message
    assert "expired-token" not in message


def test_netrc_credentials_reach_an_index_named_in_the_file(private_index, tmp_path, monkeypatch):
    layer = layer_folder(tmp_path / "private", {"requirements.txt": f"--index-url {private_index.url()}\n"
                                                                    "kit-private==1.0\n"})
    (tmp_path / "netrc").write_text("machine 127.0.0.1\nlogin ci\npassword token-one\n")
    monkeypatch.setenv("NETRC", str(tmp_path / "netrc"))
    build = build_layer(layer, Target("python3.12", "x86_64"), cache_dir=tmp_path / "cache", report=quiet)
    assert build.packages == ["kit-private==1.0"]


def test_the_docker_builder_gets_the_index_from_the_environment_never_in_a_file(private_index, tmp_path,
                                                                                 monkeypatch):
    from layerkit.docker.staging import bundling_environment

    layer = layer_folder(tmp_path / "private", {"requirements.txt": "--extra-index-url ${CORP_INDEX}\n"
                                                                    "kit-private==1.0\n"})
    monkeypatch.setenv("CORP_INDEX", private_index.url(("ci", "token-one")))
    monkeypatch.setenv("UV_INDEX_URL", "https://mirror.example/simple")
    source = SourceFolder.layer(layer)
    # Named as pip names it and as uv does: the image installs with either.
    assert bundling_environment(source) == {"CORP_INDEX": private_index.url(("ci", "token-one")),
                                            "PIP_INDEX_URL": "https://mirror.example/simple",
                                            "UV_INDEX_URL": "https://mirror.example/simple"}
    staged = stage(source, source.fingerprint(Target("python3.12", "x86_64"), bytecode=True), tmp_path / "cache")
    assert (staged / "_layerkit" / "requirements.txt").read_text() == (
        "--extra-index-url ${CORP_INDEX}\nkit-private==1.0\n")


# -- the manual step's leftovers: packages installed into python/ -----------------------------------------
def install_by_hand(layer: Path, requirement: str, index: str, python_version: str, platform: str) -> None:
    """What `pip install -t python/` on a laptop does: the laptop's Python and platform."""
    from layerkit.core import uv

    proc = subprocess.run([uv.binary(), "pip", "install", "--target", str(layer / "python"), "--index-url", index,
                           "--python", sys.executable, "--python-version", python_version, "--python-platform",
                           platform, "--only-binary", ":all:", "--no-deps", "--quiet", requirement],
                          capture_output=True, text=True, env=uv.environment(), timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr


def test_a_package_installed_by_hand_and_also_required_names_the_installed_copy(locked, tmp_path):
    layer = layer_folder(tmp_path / "manual", {"requirements.txt": f"--index-url {locked.index.url()}\n"
                                                                   "six==1.17.0\n"})
    install_by_hand(layer, "six==1.17.0", locked.index.url(), "3.12", "x86_64-manylinux_2_34")
    with pytest.raises(LayerSourceError) as error:
        build_layer(layer, Target("python3.12", "x86_64"), cache_dir=tmp_path / "cache", report=quiet)
    assert str(error.value) == (
        "layer manual: six 1.17.0 is installed into python/ by hand (six-1.17.0.dist-info) and requirements.txt "
        "installs it too; delete the installed copy (its package and six-1.17.0.dist-info): the kit installs six "
        "for python3.12/x86_64"
    )


def test_a_pure_package_installed_by_hand_builds_with_a_warning_that_says_what_to_do(locked, tmp_path):
    layer = layer_folder(tmp_path / "manual", {})
    install_by_hand(layer, "six==1.17.0", locked.index.url(), "3.12", "x86_64-manylinux_2_34")
    build = build_layer(layer, Target("python3.12", "x86_64"), cache_dir=tmp_path / "cache", report=quiet)
    assert build.warnings == [
        "layer manual: python/ holds installed distributions (six 1.17.0), left by a manual 'pip install -t'; delete "
        "them (their packages and .dist-info folders) and list them in requirements.txt, which the kit installs "
        "for the target"
    ]


def test_a_compiled_package_installed_by_hand_for_another_python_stops_the_build_and_the_synth(locked, tmp_path):
    # The seed's first gotcha: orjson installed by this machine's Python 3.11 inside a python3.12 layer.
    layer = layer_folder(tmp_path / "manual", {})
    install_by_hand(layer, f"orjson=={LOCKED_ORJSON}", locked.index.url(), "3.11", "x86_64-manylinux_2_34")
    (so_file,) = [p.relative_to(layer).as_posix() for p in layer.rglob("*.so")]
    assert ".cpython-311-" in so_file
    with pytest.raises(NativeCodeError) as error:
        build_layer(layer, Target("python3.12", "x86_64"), cache_dir=tmp_path / "cache", report=quiet)
    assert str(error.value) == (
        f"layer manual: {so_file} is built for CPython 3.11 on x86_64 Linux, and it runs on python3.12 on x86_64 "
        "Linux, where it cannot load; delete it and list its package in requirements.txt, which the kit installs "
        "for python3.12/x86_64"
    )
    assert_nothing_built(tmp_path / "cache")
    # A layer zipped by hand with the same content fails the synth the same way.
    from aws_cdk import App, Stack
    from aws_cdk import aws_lambda as lambda_

    import layerkit

    app = App(outdir=str(tmp_path / "cdk.out"))
    stack = Stack(app, "S")
    lambda_.LayerVersion(stack, "Manual", code=lambda_.Code.from_asset(str(layer)),
                         compatible_runtimes=[lambda_.Runtime.PYTHON_3_12],
                         compatible_architectures=[lambda_.Architecture.X86_64])
    layerkit.check(app)
    messages = [(m.id, m.level.value.lower(), str(m.entry.data)) for m in app.synth().get_stack_by_name("S").messages]
    assert [(path, level) for path, level, text in messages if "[layerkit:native-code-mismatch]" in text] == [
        ("/S/Manual", "error")]


def test_a_macs_extension_in_a_layer_is_named_with_what_it_was_built_for(tmp_path):
    macho = b"\xcf\xfa\xed\xfe" + bytes(60)
    layer = layer_folder(tmp_path / "mac", {"python/fast.cpython-312-darwin.so": macho})
    with pytest.raises(NativeCodeError, match=r"python/fast\.cpython-312-darwin\.so is built for macOS"):
        build_layer(layer, Target("python3.12", "x86_64"), cache_dir=tmp_path / "cache", report=quiet)


# -- declarations the kit cannot honour -------------------------------------------------------------------
BAD = {
    "editable": ({"requirements.txt": "six==1.17.0\n-e ../lib\n"},
                 "requirements.txt:2: an editable install (-e ../lib) cannot ship in a Lambda package"),
    "vcs": ({"requirements.txt": "git+https://example.com/repo.git#egg=repo\n"},
            "requirements.txt:1: git+https://example.com/repo.git#egg=repo is a version-control requirement"),
    "unknown-option": ({"requirements.txt": "--frobnicate yes\n"}, "requirements.txt:1: unknown option '--frobnicate'"),
    "missing-include": ({"requirements.txt": "-r missing.txt\n"}, "missing.txt does not exist; fix the -r/-c path"),
    "url-without-name": ({"requirements.txt": "https://example.com/pkg-1.0-py3-none-any.whl\n"},
                         "is a URL without a name; write it as 'name @ https://example.com/pkg-1.0-py3-none-any.whl'"),
    "broken-poetry-lock": ({"pyproject.toml": '[project]\nname = "x"\nversion = "0"\ndependencies = ["six"]\n',
                            "poetry.lock": "[[package]\nname = \n"}, "poetry.lock: not valid TOML"),
    "broken-pipfile-lock": ({"Pipfile": "[packages]\nsix = '*'\n", "Pipfile.lock": "{not json"},
                            "Pipfile.lock: not valid JSON"),
    "pipfile-without-lock": ({"Pipfile": "[packages]\nsix = '*'\n"},
                             "Pipfile: declares dependencies but has no Pipfile.lock beside it; run 'pipenv lock'"),
    "poetry-without-lock": ({"pyproject.toml": '[tool.poetry]\nname = "x"\n\n[tool.poetry.dependencies]\n'
                                               'python = "^3.12"\nsix = "^1.17"\n'},
                            "no poetry.lock beside it; run 'poetry lock' in that folder"),
    "uv-lock-without-project": ({"uv.lock": "version = 1\n"}, "uv.lock: has no pyproject.toml beside it"),
    "poetry-1-lock": ({"pyproject.toml": '[project]\nname = "x"\nversion = "0"\ndependencies = ["six"]\n',
                       "poetry.lock": '[metadata]\nlock-version = "2.0"\ncontent-hash = "0"\n'},
                      "poetry.lock: lock-version 2.0 does not record which group each package belongs to"),
    # A declaration where the kit does not read one, or under a near-miss name: never silently nothing installed.
    "in-python": ({"python/requirements.txt": "six==1.17.0\n"},
                  "python/requirements.txt is inside python/, where the kit never reads a dependency file and where "
                  "it would ship to /opt/python/; move it to"),
    "misspelt": ({"requirement.txt": "six==1.17.0\n"},
                 "requirement.txt: the kit reads dependencies from requirements.txt, not requirement.txt, so nothing "
                 "would be installed; rename it to requirements.txt"),
    "capitalised": ({"Requirements.txt": "six==1.17.0\n"}, "rename it to requirements.txt"),
    "misspelt-lock": ({"pyproject.toml": '[project]\nname = "x"\nversion = "0"\n', "poetry.lok": "x"},
                      "rename it to poetry.lock"),
}


@pytest.mark.parametrize("case", BAD)
def test_a_declaration_the_kit_cannot_honour_is_one_line_with_the_fix(case, tmp_path):
    files, expected = BAD[case]
    layer = layer_folder(tmp_path / "bad", {"python/m.py": "", **files})
    with pytest.raises(LayerkitError) as error:
        build_layer(layer, Target("python3.12", "x86_64"), cache_dir=tmp_path / "cache", report=quiet)
    assert expected in str(error.value)
    assert expected in one_line_cli_error(layer, tmp_path / "cache")
    assert_nothing_built(tmp_path / "cache")


def test_a_function_whose_declaration_is_misspelt_stops_naming_the_file(tmp_path):
    from layerkit.assemble.local_build import build_function

    folder = layer_folder(tmp_path / "fn", {"index.py": "import six\n", "requirments.txt": "six==1.17.0\n"})
    with pytest.raises(DeclarationError, match=r"rename it to requirements\.txt"):
        build_function(folder, Target("python3.12", "x86_64"), cache_dir=tmp_path / "cache", report=quiet)


def test_a_suffixed_requirements_file_alone_is_a_warning_not_a_stop(tmp_path):
    layer = layer_folder(tmp_path / "dev", {"python/m.py": "", "requirements-dev.txt": "pytest==9.2.0\n"})
    build = build_layer(layer, Target("python3.12", "x86_64"), cache_dir=tmp_path / "cache", report=quiet)
    assert build.packages == []
    assert build.warnings == [
        "layer dev: requirements-dev.txt is not read (the kit reads requirements.txt, or a lock): nothing of it is "
        "installed; if its packages must ship, put them in requirements.txt"]


def test_two_declarations_that_disagree_are_refused(locked, tmp_path):
    project = copy_project(locked.uv, tmp_path)
    (project / "requirements.txt").write_text(f"orjson=={NEWER_ORJSON}\n")  # stale beside the uv.lock
    with pytest.raises(LayerSourceError) as error:
        build_layer(project, Target("python3.12", "x86_64"), cache_dir=tmp_path / "cache", report=quiet)
    assert str(error.value) == (
        f"layer uv_layer: requirements.txt and uv.lock disagree: requirements.txt:1 asks for orjson=={NEWER_ORJSON}, "
        f"uv.lock installs orjson {LOCKED_ORJSON}; keep one declaration, or refresh the other from it"
    )
    (project / "requirements.txt").write_text(f"orjson=={LOCKED_ORJSON}\npython-dateutil\n")  # agrees
    build = build_layer(project, Target("python3.12", "x86_64"), cache_dir=tmp_path / "cache", report=quiet)
    assert build.packages == LOCKED


def test_the_cli_reports_the_packages_of_a_lock_as_json(locked, tmp_path):
    proc = subprocess.run([sys.executable, "-m", "layerkit.cli", "build", str(locked.pipenv), "--runtime",
                           "python3.12", "--arch", "arm64", "--json", "--cache-dir", str(tmp_path)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["packages"] == sorted([*LOCKED, "kit-armonly==1.0"])


def test_what_pythonlayerversion_cannot_read_is_staged_where_the_container_sees_it(tmp_path):
    """Includes outside the folder are inlined; local wheels, path packages and find-links folders are copied
    into _layerkit/ (which the bundle drops), beside the one requirements.txt the image's installer reads there."""
    repo = tmp_path / "repo"
    layer_folder(repo / "shared" / "kitlib", {
        "pyproject.toml": '[build-system]\nrequires = ["flit_core>=3.9,<4"]\nbuild-backend = "flit_core.buildapi"\n\n'
                          '[project]\nname = "kitlib"\nversion = "0.1"\ndescription = "helpers"\n',
        "kitlib/__init__.py": '"""Shared helpers."""\n',
    })
    make_wheel(repo / "shared" / "wheelhouse", "kit-found", {"kit_found.py": ""})
    (repo / "shared" / "base.txt").write_text("--find-links wheelhouse\nkit-found==1.0\n")
    (repo / "shared" / "pins.txt").write_text("six==1.17.0\n")
    layer = layer_folder(repo / "layers" / "staged", {
        "python/mod.py": "",
        "requirements.txt": "-r ../../shared/base.txt\n-c ../../shared/pins.txt\nsix\n"
                            "./wheels/kit_local-1.0-py3-none-any.whl\n../../shared/kitlib ; python_version >= '3.12'\n",
    })
    make_wheel(layer / "wheels", "kit-local", {"kit_local.py": ""})
    source = SourceFolder.layer(layer)
    staged = stage(source, source.fingerprint(Target("python3.12", "x86_64"), bytecode=True), tmp_path / "cache")
    assert (staged / "_layerkit" / "requirements.txt").read_text() == (  # paths relative to it
        "--find-links ./find-links-0\n"
        "-c ./constraints.txt\n"
        "kit-found==1.0\n"
        "six\n"
        "./wheels/kit_local-1.0-py3-none-any.whl\n"
        './packages/kitlib ; python_version >= "3.12"\n'
    )
    assert (staged / "_layerkit" / "constraints.txt").read_text() == "six==1.17.0\n"
    assert (staged / "_layerkit" / "find-links-0" / "kit_found-1.0-py3-none-any.whl").is_file()
    assert (staged / "_layerkit" / "packages" / "kitlib" / "kitlib" / "__init__.py").is_file()
    assert sorted(p.name for p in staged.iterdir()) == ["_layerkit", "mod.py"]


def test_a_local_path_package_reaches_the_docker_builder_with_the_files_the_local_build_reads(tmp_path):
    """The Docker builder's copy of a local path package follows the kit's rules (never-deploy list, build
    output left out, links followed), so a package's .env or node_modules never reaches the bundling container."""
    from layerkit.sources import package_files

    repo = tmp_path / "repo"
    package = layer_folder(repo / "shared" / "kitlib", {
        "pyproject.toml": '[build-system]\nrequires = ["flit_core>=3.9,<4"]\nbuild-backend = "flit_core.buildapi"\n\n'
                          '[project]\nname = "kitlib"\nversion = "0.1"\ndescription = "helpers"\n',
        "kitlib/__init__.py": '"""Shared helpers."""\n',
        ".env": "DATABASE_PASSWORD=hunter2\n",
        "node_modules/left-pad/index.js": "module.exports = 1\n",
        "build/lib/kitlib/__init__.py": "stale = True\n",
        "kitlib.egg-info/PKG-INFO": "Name: kitlib\n",
    })
    (repo / "shared" / "common.py").write_text("SHARED = 1\n")
    (package / "kitlib" / "common.py").symlink_to(repo / "shared" / "common.py")
    layer = layer_folder(repo / "layers" / "staged", {"python/mod.py": "",
                                                      "requirements.txt": "../../shared/kitlib\n"})
    source = SourceFolder.layer(layer)
    staged = stage(source, source.fingerprint(Target("python3.12", "x86_64"), bytecode=True), tmp_path / "cache")
    copy = staged / "_layerkit" / "packages" / "kitlib"
    in_docker = sorted(p.relative_to(copy).as_posix() for p in copy.rglob("*") if p.is_file())
    assert in_docker == sorted(p.relative_to(package).as_posix() for p in package_files(package))
    assert in_docker == ["kitlib/__init__.py", "kitlib/common.py", "pyproject.toml"]
    assert (copy / "kitlib" / "common.py").read_text() == "SHARED = 1\n"
    assert not (copy / "kitlib" / "common.py").is_symlink()
