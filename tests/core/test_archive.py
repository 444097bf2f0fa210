"""The deterministic zip (layerkit.core.archive): the same bytes from any cache, any number of workers and any machine,
and bounded memory however large a file."""

from __future__ import annotations

import base64
import hashlib
import json
import subprocess
import sys
import time
import zipfile
from pathlib import Path

from layerkit.assemble.local_build import build_layer
from layerkit.core.targets import Target
from tests.conftest import LAYERS, make_wheel, write
from tests.helpers import cli, quiet

X86 = Target("python3.12", "x86_64")


MY_LAYER = (LAYERS / "my_layer" / "requirements.txt").read_text()


def layer(root: Path, requirements: str, module: str = "mod") -> Path:
    (root / "python").mkdir(parents=True)
    (root / "python" / f"{module}.py").write_text("VALUE = 1\n")
    (root / "requirements.txt").write_text(requirements)
    return root


def record_hash(data: bytes) -> str:
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def wheel_with(folder: Path, name: str, files: dict[str, bytes], version: str = "1.0") -> Path:
    """A wheel of ``files`` (paths inside the wheel, written as given: nothing checks them) with a RECORD."""
    dist = f"{name}-{version}"
    files = {**files,
             f"{dist}.dist-info/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n".encode(),
             f"{dist}.dist-info/WHEEL": b"Wheel-Version: 1.0\nGenerator: tests\nRoot-Is-Purelib: true\n"
                                        b"Tag: py3-none-any\n"}
    rows = [f"{path},{record_hash(data)},{len(data)}" for path, data in files.items()]
    folder.mkdir(parents=True, exist_ok=True)
    wheel = folder / f"{dist}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w", zipfile.ZIP_DEFLATED) as archive:
        for path, data in files.items():
            archive.writestr(path, data)
        archive.writestr(f"{dist}.dist-info/RECORD", "\n".join([*rows, f"{dist}.dist-info/RECORD,,"]) + "\n")
    return wheel


def one_line(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 1, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("layerkit: error:")]
    assert len(errors) == 1, result.stderr
    return errors[0]


def names(zip_path: Path) -> list[str]:
    with zipfile.ZipFile(zip_path) as archive:
        return sorted(n for n in archive.namelist() if not n.endswith("/"))


# -- 6. Lambda's limits in every command, and the tools to meet them -------------------------------------------
def sparse(path: Path, size: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as file:
        file.truncate(size)
    return path


def cli_with_peak_memory(*args: str) -> tuple[subprocess.CompletedProcess, float]:
    """The CLI's result and the peak resident memory (MB) of the kit's own process (its VmHWM: getrusage's maxrss
    would count the memory of the process that forked it, kept across exec)."""
    code = ("import runpy, sys; sys.argv = ['layerkit', *sys.argv[1:]]\n"
            "try:\n    runpy.run_module('layerkit.cli', run_name='__main__')\n"
            "finally:\n    print(next(line.split()[1] for line in open('/proc/self/status') "
            "if line.startswith('VmHWM:')), file=sys.stderr)\n")
    result = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=600)
    *rest, peak = result.stderr.rstrip("\n").split("\n")
    return subprocess.CompletedProcess(result.args, result.returncode, result.stdout, "\n".join(rest) + "\n"), \
        int(peak) / 1024


def test_two_builds_from_clean_caches_are_byte_identical(tmp_path):
    target = Target("python3.12", "x86_64")
    first = build_layer(LAYERS / "my_layer", target, cache_dir=tmp_path / "a")
    second = build_layer(LAYERS / "my_layer", target, cache_dir=tmp_path / "b")
    assert (first.cache, second.cache) == ("miss", "miss")
    assert first.sha256 == second.sha256
    assert first.zip.read_bytes() == second.zip.read_bytes()
    assert hashlib.sha256(first.zip.read_bytes()).hexdigest() == first.sha256


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


def test_the_zip_is_the_same_on_any_number_of_workers(tmp_path):
    source = layer(tmp_path / "workers", MY_LAYER)
    one, two = (build_layer(source, X86, cache_dir=tmp_path / f"cache{n}", report=quiet, workers=n) for n in (1, 2))
    assert one.sha256 == two.sha256


def test_a_large_file_is_compressed_with_bounded_memory_and_a_layer_over_the_limit_says_what_would_fit(tmp_path):
    layer = tmp_path / "heavy"
    sparse(layer / "python" / "data" / "model.bin", 200 * 1024 * 1024)
    tests = {f"kit_heavy/tests/data_{i}.bin": bytes(20 * 1024 * 1024) for i in range(3)}
    wheel_with(layer / "wheels", "kit_heavy", {"kit_heavy/__init__.py": b"", **tests})
    write(layer, {"requirements.txt": "./wheels/kit_heavy-1.0-py3-none-any.whl\n"})
    cache = str(tmp_path / "cache")
    over, peak = cli_with_peak_memory("build", str(layer), "--runtime", "python3.12", "--arch", "x86_64",
                                      "--cache-dir", cache)
    assert one_line(over) == (
        "layerkit: error: layer heavy is 260 MB unzipped; Lambda allows 250 MB for a function's code and all its "
        "layers. Measured on it: the packages' tests/ folders 60 MB (--slim tests). Leaving out the packages' "
        "tests/ folders makes it 200 MB, which fits.")
    assert peak < 150, f"the build held {peak:.0f} MB: a 200 MB file was read whole"
    fits = cli("build", str(layer), "--runtime", "python3.12", "--arch", "x86_64", "--cache-dir", cache,
               "--slim", "tests", "--json")
    assert fits.returncode == 0, fits.stderr
    built = json.loads(fits.stdout)
    assert built["unzipped_bytes"] < 210 * 1024 * 1024
    assert not [n for n in names(Path(built["zip"])) if "/tests/" in n]
    assert "over 80% of Lambda's 250 MB limit" in fits.stderr  # near the limit: said by the build, not only the synth
