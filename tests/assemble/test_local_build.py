"""The Docker-free build of one target (layerkit.assemble.local_build): a layer that imports on the runtime's Python
with only itself on the path, and a second build that is a cache hit under the same asset hash."""

from __future__ import annotations

import zipfile
from pathlib import Path

from layerkit.assemble.local_build import build_layer
from layerkit.core.targets import Target
from tests.conftest import LAYERS, extract, run_isolated
from tests.helpers import copy_layer


def test_layer_imports_under_python312_with_only_the_layer_on_its_path(kit_cache, python312, tmp_path):
    build = build_layer(LAYERS / "my_layer", Target("python3.12", "x86_64"), cache_dir=kit_cache)
    root = extract(build.zip, tmp_path)
    code, out, err = run_isolated(python312, (
        "import my_layer, pydantic, pydantic_core, sys\n"
        "print(pydantic.VERSION, pydantic_core.__file__.startswith(sys.path[0]))"
    ), root / "python")
    assert code == 0, err
    assert out.split() == ["2.14.3", "True"]


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
