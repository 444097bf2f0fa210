"""The deterministic zip (layerkit.core.archive): the same bytes from any cache, any number of workers and any machine,
and bounded memory however large a file."""

from __future__ import annotations

import hashlib
import json
import time
import zipfile
from pathlib import Path

from layerkit.assemble.local_build import build_layer
from layerkit.core.targets import Target
from tests.conftest import LAYERS, make_wheel, write
from tests.helpers import (
    MY_LAYER,
    TARGET_312,
    cli,
    cli_with_peak_memory,
    layer,
    names,
    one_line,
    quiet,
    sparse,
    wheel_with,
)

# -- 6. Lambda's limits in every command, and the tools to meet them -------------------------------------------


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
    one, two = (build_layer(source, TARGET_312,
                            cache_dir=tmp_path / f"cache{n}", report=quiet, workers=n) for n in (1, 2))
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
