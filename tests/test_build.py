"""The Docker-free layer build: layout, native wheels for the target, determinism, caching."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest

from layerkit.assemble.local_build import build_layer
from layerkit.core.targets import Target
from tests.conftest import LAYERS, extract, make_wheel, run_isolated

ELF_MACHINE = {62: "x86_64", 183: "arm64"}  # e_machine values: EM_X86_64, EM_AARCH64


def elf_machine(data: bytes) -> str:
    assert data[:4] == b"\x7fELF", "not an ELF file"
    little_endian = data[5] == 1
    return ELF_MACHINE[int.from_bytes(data[18:20], "little" if little_endian else "big")]


def copy_layer(name: str, destination: Path) -> Path:
    return Path(shutil.copytree(LAYERS / name, destination / name))


@pytest.fixture(scope="module", params=["x86_64", "arm64"])
def my_layer(request, kit_cache):
    return build_layer(LAYERS / "my_layer", Target("python3.12", request.param), cache_dir=kit_cache)


def test_every_module_sits_at_the_top_of_python(my_layer):
    with zipfile.ZipFile(my_layer.zip) as archive:
        names = archive.namelist()
    tops = {name.split("/")[1] for name in names if name.count("/") >= 1 and not name.endswith("python/")}
    assert all(name.startswith("python/") for name in names)
    assert {"my_layer.py", "pydantic", "pydantic_core", "annotated_types", "typing_extensions.py"} <= tops
    assert not [n for n in names if n.startswith("python/bin/")], "build-machine scripts shipped"


def test_bytecode_is_for_the_target_python_and_never_rechecked(my_layer):
    with zipfile.ZipFile(my_layer.zip) as archive:
        pycs = [n for n in archive.namelist() if n.endswith(".pyc")]
        assert "python/__pycache__/my_layer.cpython-312.pyc" in pycs
        assert all(".cpython-312." in n for n in pycs), "bytecode of another Python shipped"
        header = archive.read("python/__pycache__/my_layer.cpython-312.pyc")[:16]
    # PEP 552 flags: 0b01 = hash-based, unchecked. A timestamp .pyc would be stale once the CDK CLI zips
    # every file with a 1980 date, and Lambda would compile the module again at every cold start.
    assert int.from_bytes(header[4:8], "little") == 0b01


def test_no_bytecode_when_asked(tmp_path):
    build = build_layer(LAYERS / "another_layer", Target("python3.12", "x86_64"), cache_dir=tmp_path,
                        bytecode=False)
    with zipfile.ZipFile(build.zip) as archive:
        assert not [n for n in archive.namelist() if n.endswith(".pyc")]
    with_pyc = build_layer(LAYERS / "another_layer", Target("python3.12", "x86_64"), cache_dir=tmp_path)
    assert with_pyc.asset_hash != build.asset_hash  # .pyc are content: another asset, never a stale one


def hidden_python_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """This environment, but one in which the kit finds no python3.12: no pyenv, none on PATH, none of uv's (and
    uv, asked to install one, cannot download it here). ``CI`` only where ``extra`` sets it."""
    env = {key: value for key, value in os.environ.items() if key != "CI"}
    env.update({"PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin", "PYENV_ROOT": str(tmp_path / "no-pyenv"),
                "UV_PYTHON_INSTALL_DIR": str(tmp_path / "no-uv-pythons"), **extra})
    return env


def build_with_python_hidden(tmp_path: Path, **extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "layerkit.cli", "build", str(LAYERS / "another_layer"),
                           "--runtime", "python3.12", "--arch", "x86_64", "--json", "--cache-dir", str(tmp_path)],
                          capture_output=True, text=True, env=hidden_python_env(tmp_path, **extra), timeout=600)


def test_without_the_target_python_a_local_build_ships_source_only_and_names_the_asset_it_builds(tmp_path):
    proc = build_with_python_hidden(tmp_path)
    assert proc.returncode == 0, proc.stderr
    built = json.loads(proc.stdout)
    assert built["bytecode"] is False
    with_pyc = build_layer(LAYERS / "another_layer", Target("python3.12", "x86_64"), cache_dir=tmp_path / "with")
    warning = next(line for line in proc.stderr.splitlines() if "ships no .pyc" in line)
    assert warning.startswith("layerkit: warning: layer another_layer: no Python 3.12 here"), warning
    assert "'uv python install 3.12' could not install one" in warning  # asked, and the download was refused
    assert f"under asset hash {built['asset_hash'][:12]} (with .pyc it is {with_pyc.asset_hash[:12]}" in warning
    assert "--no-bytecode on every machine" in warning


def test_in_ci_a_build_that_would_ship_without_pyc_for_want_of_python_stops_with_the_fix(tmp_path):
    proc = build_with_python_hidden(tmp_path, CI="true")
    assert proc.returncode == 1
    lines = [line for line in proc.stderr.splitlines() if not line.startswith("layerkit: no Python 3.12 here: asking")]
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("layerkit: error: layer another_layer: no Python 3.12 here"), lines[0]
    assert "in CI (CI is set) that would make another asset" in lines[0]
    assert "install Python 3.12 on the runner" in lines[0]
    assert "or set --no-bytecode on every machine" in lines[0]
    assert not list(tmp_path.glob("builds/*/*.zip"))  # nothing built under another asset hash


def test_compiled_dependency_is_built_for_the_target_architecture(my_layer):
    with zipfile.ZipFile(my_layer.zip) as archive:
        shared_objects = [n for n in archive.namelist() if n.endswith(".so")]
        assert shared_objects, "pydantic-core ships compiled code; the layer has none"
        for name in shared_objects:
            assert "cpython-312" in name or "abi3" in name, name
            assert elf_machine(archive.read(name)) == my_layer.architecture, name


def test_layer_imports_under_python312_with_only_the_layer_on_its_path(kit_cache, python312, tmp_path):
    build = build_layer(LAYERS / "my_layer", Target("python3.12", "x86_64"), cache_dir=kit_cache)
    root = extract(build.zip, tmp_path)
    code, out, err = run_isolated(python312, (
        "import my_layer, pydantic, pydantic_core, sys\n"
        "print(pydantic.VERSION, pydantic_core.__file__.startswith(sys.path[0]))"
    ), root / "python")
    assert code == 0, err
    assert out.split() == ["2.14.3", "True"]


def test_two_builds_from_clean_caches_are_byte_identical(tmp_path):
    target = Target("python3.12", "x86_64")
    first = build_layer(LAYERS / "my_layer", target, cache_dir=tmp_path / "a")
    second = build_layer(LAYERS / "my_layer", target, cache_dir=tmp_path / "b")
    assert (first.cache, second.cache) == ("miss", "miss")
    assert first.sha256 == second.sha256
    assert first.zip.read_bytes() == second.zip.read_bytes()
    assert hashlib.sha256(first.zip.read_bytes()).hexdigest() == first.sha256


@pytest.mark.parametrize("hashed", [False, True], ids=["pinned", "with-hashes"])
def test_a_file_two_requirements_ship_is_the_dependents_copy_in_every_build(tmp_path, hashed):
    # uv writes wheels in parallel, so which copy of shared/__init__.py lands last changes between runs; pip's
    # order (a dependency first, then what needs it) must decide, every time. The smaller wheel, kit-base, is
    # the one uv tends to write last.
    layer = tmp_path / "overlap"
    (layer / "python").mkdir(parents=True)
    wheels = [
        make_wheel(layer / "wheels", "kit-base", {"shared/__init__.py": "WHO = 'base'\n"}),
        make_wheel(layer / "wheels", "kit-plugin", {"shared/__init__.py": "WHO = 'plugin'\n", "big.py": "#" * 200_000},
                   requires=("kit-base==1.0",)),
    ]
    pins = ["kit-plugin==1.0"] if not hashed else [  # with hashes, every distribution is listed
        f"{name}==1.0 --hash=sha256:{hashlib.sha256(wheel.read_bytes()).hexdigest()}"
        for name, wheel in zip(("kit-base", "kit-plugin"), wheels, strict=True)
    ]
    (layer / "requirements.txt").write_text("\n".join(["--no-index", "--find-links wheels", *pins]) + "\n")
    reports: list[str] = []
    builds = [build_layer(layer, Target("python3.12", "x86_64"), cache_dir=tmp_path / f"cache{i}", bytecode=False,
                          report=reports.append) for i in range(4)]
    for build in builds:
        with zipfile.ZipFile(build.zip) as archive:
            assert archive.read("python/shared/__init__.py") == b"WHO = 'plugin'\n"
            assert {"python/big.py", "python/kit_base-1.0.dist-info/RECORD"} <= set(archive.namelist())
    assert len({build.sha256 for build in builds}) == 1
    assert any("kit-base and kit-plugin both ship shared/__init__.py; it keeps kit-plugin's" in line
               for line in reports), reports


def test_a_layer_of_local_wheels_is_byte_identical_from_two_empty_uv_caches(tmp_path, monkeypatch):
    # uv records when it cached a wheel from a local path (uv_cache.json, listed in RECORD); the layer must not.
    layer = tmp_path / "vendored"
    (layer / "python").mkdir(parents=True)
    make_wheel(layer / "wheels", "kit-local", {"kit_local.py": "X = 1\n"})
    (layer / "requirements.txt").write_text("--no-index\n--find-links wheels\nkit-local==1.0\n")
    builds = []
    for run in ("a", "b"):
        monkeypatch.setenv("UV_CACHE_DIR", str(tmp_path / f"uv-{run}"))
        builds.append(build_layer(layer, Target("python3.12", "x86_64"), cache_dir=tmp_path / run, bytecode=False))
        time.sleep(1.1)  # uv's timestamp counts seconds
    assert builds[0].zip.read_bytes() == builds[1].zip.read_bytes()
    with zipfile.ZipFile(builds[0].zip) as archive:
        assert "python/kit_local.py" in archive.namelist()
        assert "uv_cache.json" not in archive.read("python/kit_local-1.0.dist-info/RECORD").decode()


def test_a_relative_cache_dir_still_puts_the_dependencies_in_the_layer(tmp_path, monkeypatch):
    layer = copy_layer("my_layer", tmp_path)
    monkeypatch.chdir(tmp_path)
    build = build_layer(layer, Target("python3.12", "x86_64"), cache_dir=Path("cache"), bytecode=False)
    with zipfile.ZipFile(build.zip) as archive:
        assert "python/pydantic/__init__.py" in archive.namelist()
    assert build.zip.is_relative_to(tmp_path / "cache")
    assert sorted(p.name for p in layer.iterdir()) == ["python", "requirements.txt"], "the build wrote into the layer"


def test_second_build_is_a_cache_hit_with_the_same_asset_hash(tmp_path):
    target = Target("python3.12", "x86_64")
    cold = build_layer(LAYERS / "my_layer", target, cache_dir=tmp_path)
    warm = build_layer(LAYERS / "my_layer", target, cache_dir=tmp_path)
    assert (cold.cache, warm.cache) == ("miss", "hit")
    assert (warm.sha256, warm.asset_hash) == (cold.sha256, cold.asset_hash)


def test_one_changed_byte_changes_the_zip_and_the_asset_hash(tmp_path):
    layer = copy_layer("another_layer", tmp_path)
    target = Target("python3.12", "x86_64")
    before = build_layer(layer, target, cache_dir=tmp_path / "cache")
    module = layer / "python" / "another_layer" / "module2.py"
    module.write_bytes(module.read_bytes().replace(b"top: int = 3", b"top: int = 4"))
    after = build_layer(layer, target, cache_dir=tmp_path / "cache")
    assert after.cache == "miss"
    assert after.sha256 != before.sha256
    assert after.asset_hash != before.asset_hash


def test_asset_hash_depends_on_target_but_not_on_where_the_layer_sits(tmp_path):
    x86 = build_layer(LAYERS / "another_layer", Target("python3.12", "x86_64"), cache_dir=tmp_path)
    arm = build_layer(LAYERS / "another_layer", Target("python3.12", "arm64"), cache_dir=tmp_path)
    moved = build_layer(copy_layer("another_layer", tmp_path), Target("python3.12", "x86_64"), cache_dir=tmp_path)
    assert x86.asset_hash != arm.asset_hash
    assert moved.asset_hash == x86.asset_hash
    assert moved.cache == "hit"


def test_bytecode_left_in_the_layer_folder_is_not_shipped_nor_hashed(tmp_path):
    layer = copy_layer("another_layer", tmp_path)
    target = Target("python3.12", "x86_64")
    clean = build_layer(layer, target, cache_dir=tmp_path / "cache")
    pycache = layer / "python" / "another_layer" / "__pycache__"
    pycache.mkdir()
    (pycache / "module1.cpython-311.pyc").write_bytes(b"\x00" * 16)
    dirty = build_layer(layer, target, cache_dir=tmp_path / "cache")
    assert (dirty.cache, dirty.asset_hash) == ("hit", clean.asset_hash)


def layerkit_build(layer: Path, cache: Path, out: Path | None = None, arch: str = "x86_64") -> subprocess.Popen:
    command = [sys.executable, "-m", "layerkit.cli", "build", str(layer), "--runtime", "python3.12",
               "--arch", arch, "--json", "--cache-dir", str(cache)]
    if out:
        command += ["--out", str(out)]
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_concurrent_builds_of_one_layer_build_it_once(tmp_path):
    cache = tmp_path / "cache"
    procs = [layerkit_build(LAYERS / "my_layer", cache, tmp_path / f"out{i}.zip") for i in range(2)]
    results = []
    for proc in procs:
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err
        results.append(json.loads(out))
    assert sorted(r["cache"] for r in results) == ["hit", "miss"]
    assert results[0]["sha256"] == results[1]["sha256"]
    assert (tmp_path / "out0.zip").read_bytes() == (tmp_path / "out1.zip").read_bytes()
    assert not list(cache.glob("*/.tmp-*"))


@pytest.mark.parametrize("delay", [0.0, 0.3, 0.6])  # killed while starting, installing, compiling or zipping
def test_an_interrupted_build_leaves_nothing_a_later_build_trusts(tmp_path, delay):
    cache = tmp_path / "cache"
    proc = layerkit_build(LAYERS / "my_layer", cache, arch="arm64")
    deadline = time.monotonic() + 60
    while not list(cache.glob("*/.tmp-*")) and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(delay)
    os.kill(proc.pid, signal.SIGKILL)
    proc.communicate()
    # Whatever the moment: an entry is complete (its marker is written last, inside the folder that is renamed
    # into place) or it is not there at all. A fast machine may finish before the kill: then it is whole.
    for entry in [p for p in cache.glob("*/*") if p.is_dir() and not p.name.startswith(".tmp-")]:
        assert (entry / "entry.json").is_file(), f"{entry} is visible but incomplete"
    rebuilt = build_layer(LAYERS / "my_layer", Target("python3.12", "arm64"), cache_dir=cache)
    with zipfile.ZipFile(rebuilt.zip) as archive:
        assert archive.testzip() is None
        assert "python/pydantic/__init__.py" in archive.namelist()
    fresh = build_layer(LAYERS / "my_layer", Target("python3.12", "arm64"), cache_dir=tmp_path / "fresh")
    assert rebuilt.sha256 == fresh.sha256
    assert not list(cache.glob("*/.tmp-*")), "a stale build folder was not cleaned up"


def test_cli_json_reports_what_a_user_needs(tmp_path):
    proc = layerkit_build(LAYERS / "another_layer", tmp_path / "cache", tmp_path / "layer.zip")
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    result = json.loads(out)
    assert {"zip", "sha256", "zipped_bytes", "unzipped_bytes", "cache", "builder"} <= result.keys()
    assert result["zip"] == str(tmp_path / "layer.zip")
    assert result["zipped_bytes"] == (tmp_path / "layer.zip").stat().st_size
    assert (result["cache"], result["builder"]) == ("miss", "local")
    assert hashlib.sha256((tmp_path / "layer.zip").read_bytes()).hexdigest() == result["sha256"]


def test_a_file_that_does_not_compile_for_the_target_is_reported_and_ships_as_source(tmp_path):
    layer = tmp_path / "legacy"
    (layer / "python").mkdir(parents=True)
    (layer / "python" / "fine.py").write_text("X = 1\n")
    (layer / "python" / "legacy.py").write_text('print "a Python 2 module"\n')
    build = build_layer(layer, Target("python3.12", "x86_64"), cache_dir=tmp_path / "cache", report=lambda _: None)
    assert build.bytecode is True
    (warning,) = build.warnings
    assert warning.startswith("layer legacy: 1 file(s) do not compile for Python 3.12 and ship as source, compiled "
                              "again at each cold start (first: legacy.py: SyntaxError: Missing parentheses")
    with zipfile.ZipFile(build.zip) as archive:
        names = archive.namelist()
    assert {"python/legacy.py", "python/__pycache__/fine.cpython-312.pyc"} <= set(names)
    assert "python/__pycache__/legacy.cpython-312.pyc" not in names


WITHOUT_FCNTL_AND_PRCTL = """
import ctypes, sys
sys.modules["fcntl"] = None  # `import fcntl` fails, as on Windows


class _NoPrctl(ctypes.CDLL):  # a C library without prctl, as on macOS and Windows
    def __getattr__(self, name):
        if name == "prctl":
            raise AttributeError(name)
        return super().__getattr__(name)


ctypes.CDLL = _NoPrctl
sys.path.insert(0, sys.argv[1])
import json
import layerkit
from pathlib import Path
from aws_cdk import App, Stack
from aws_cdk import aws_lambda as lambda_
from layerkit import PythonFunction, SharedPythonLayer
from layerkit.assemble.local_build import build_layer
from layerkit.core.targets import Target

layer, cache, outdir = Path(sys.argv[2]), Path(sys.argv[3]), sys.argv[4]
builds = [build_layer(layer, Target("python3.12", "x86_64"), cache_dir=cache, report=lambda _: None) for _ in "ab"]
app = App(outdir=outdir, context={"layerkit:builder": "local"})
stack = Stack(app, "S")
shared = SharedPythonLayer(stack, "L", entry=layer, runtime=lambda_.Runtime.PYTHON_3_12)
PythonFunction(stack, "F", entry=sys.argv[5], runtime=lambda_.Runtime.PYTHON_3_12, layers=[shared])
app.synth()
from layerkit.core import children
print(json.dumps({"caches": [b.cache for b in builds], "packages": builds[0].packages, "sha256": builds[0].sha256,
                  "fcntl": "fcntl" in sys.modules and sys.modules["fcntl"] is not None,
                  "prctl": children._linux_prctl() is not None}))
"""


def test_the_kit_runs_where_there_is_no_fcntl_and_no_prctl(tmp_path):
    """What macOS and Windows lack, taken away on Linux: the build, its cache and a synth still work."""
    layer = tmp_path / "portable layer"
    (layer / "python").mkdir(parents=True)
    (layer / "python" / "portable.py").write_text("import kit_dep\n")
    (layer / "requirements.txt").write_text("./wheels/kit_dep-1.0-py3-none-any.whl\n")
    make_wheel(layer / "wheels", "kit-dep", {"kit_dep.py": "X = 1\n"})
    function = tmp_path / "fn"
    function.mkdir()
    (function / "index.py").write_text("import portable\n\ndef handler(event, context):\n    return 1\n")
    env = {**os.environ, "LAYERKIT_CACHE_DIR": str(tmp_path / "cache")}
    proc = subprocess.run([sys.executable, "-c", WITHOUT_FCNTL_AND_PRCTL, str(LAYERS.parent), str(layer),
                           str(tmp_path / "cache"), str(tmp_path / "cdk.out"), str(function)],
                          capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout.splitlines()[-1])
    assert (result["fcntl"], result["prctl"]) == (False, False)
    assert result["caches"] == ["miss", "hit"]
    assert result["packages"] == ["kit-dep==1.0"]
    # The same bytes as a build where both exist.
    assert build_layer(layer, Target("python3.12", "x86_64"), cache_dir=tmp_path / "other",
                       report=lambda _: None).sha256 == result["sha256"]


def test_a_layer_in_a_folder_with_spaces_and_non_ascii_letters_builds_and_imports(tmp_path, python312):
    layer = tmp_path / "mes couches" / "çà_layer été"
    (layer / "python" / "paquet").mkdir(parents=True)
    (layer / "python" / "paquet" / "__init__.py").write_text("NOM = 'é'\n")
    (layer / "python" / "paquet" / "données.txt").write_text("ok\n")
    build = build_layer(layer, Target("python3.12", "x86_64"), cache_dir=tmp_path / "caché dir",
                        report=lambda _: None)
    with zipfile.ZipFile(build.zip) as archive:
        names = archive.namelist()
        assert "python/paquet/données.txt" in names
        pyc = archive.read("python/paquet/__pycache__/__init__.cpython-312.pyc")
    root = extract(build.zip, tmp_path / "extracted")
    code, out, err = run_isolated(python312, "import marshal, paquet\nprint(paquet.NOM)\n"
                                             f"print(marshal.loads({pyc!r}[16:]).co_filename)", root / "python")
    assert code == 0, err
    assert out.split() == ["é", "/opt/python/paquet/__init__.py"]


def test_without_the_target_python_an_app_of_several_constructs_says_so_once(tmp_path):
    script = (
        "import layerkit\n"
        "from aws_cdk import App, Stack\n"
        "from aws_cdk import aws_lambda as lambda_\n"
        "app = App(context={'layerkit:builder': 'local'})\n"
        "stack = Stack(app, 'S')\n"
        "for name in ('my_layer', 'another_layer'):\n"
        f"    layerkit.SharedPythonLayer(stack, name, entry={str(LAYERS)!r} + '/' + name,\n"
        "                               runtime=lambda_.Runtime.PYTHON_3_12)\n"
    )
    env = hidden_python_env(tmp_path, LAYERKIT_CACHE_DIR=str(tmp_path / "cache"), PYTHONPATH=str(LAYERS.parent))
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr
    warnings = [line for line in proc.stderr.splitlines() if "ships no .pyc" in line]
    assert len(warnings) == 1, warnings  # two layers, one reason: said once


def test_a_build_never_reads_the_uv_settings_of_the_app_the_user_or_the_shell(tmp_path, monkeypatch):
    """An app whose repository pins another uv and a dead index in its pyproject.toml, a user uv.toml that points at
    another dead index, and a shell that caps versions at the year 2000: a cold build installs as anywhere else."""
    app = tmp_path / "app"
    (app / "layers" / "deps" / "python").mkdir(parents=True)
    (app / "pyproject.toml").write_text('[tool.uv]\nrequired-version = "==0.11.*"\n'
                                        'index-url = "http://127.0.0.1:9/simple"\n')
    (app / "layers" / "deps" / "requirements.txt").write_text("six==1.17.0\n")
    (tmp_path / "config" / "uv").mkdir(parents=True)
    (tmp_path / "config" / "uv" / "uv.toml").write_text('index-url = "http://127.0.0.1:9/simple"\n')
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.setenv("UV_EXCLUDE_NEWER", "2000-01-01T00:00:00Z")
    monkeypatch.chdir(app)
    build = build_layer("layers/deps", Target("python3.12", "x86_64"), cache_dir=tmp_path / "cache",
                        report=lambda _: None)
    assert build.packages == ["six==1.17.0"]
