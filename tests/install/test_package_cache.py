"""The package cache (layerkit.install.package_cache): each distribution installed, compiled and compressed once per
target, never reused for another target or wheel."""

from __future__ import annotations

import zipfile

import pytest

from layerkit.assemble.local_build import build_layer
from layerkit.core.errors import BuildError
from layerkit.core.targets import Target
from tests.conftest import make_wheel
from tests.helpers import MY_LAYER, TARGET_312, entries, layer, quiet


def test_a_second_layer_sharing_packages_installs_only_what_it_adds(tmp_path):
    cache = tmp_path / "cache"
    first = build_layer(layer(tmp_path / "first", MY_LAYER), TARGET_312, cache_dir=cache, report=quiet)
    second_source = layer(tmp_path / "second", MY_LAYER + "six==1.17.0\n", module="other")
    second = build_layer(second_source, TARGET_312, cache_dir=cache, report=quiet)
    assert first.package_cache == {"reused": 0, "installed": 5}
    assert second.package_cache == {"reused": 5, "installed": 1}
    assert len(entries(cache)) == 6
    # Assembled from cached members, it is byte for byte the layer a cold build makes.
    cold = build_layer(second_source, TARGET_312, cache_dir=tmp_path / "cold", report=quiet)
    assert (cold.package_cache, cold.sha256) == ({"reused": 0, "installed": 6}, second.sha256)


def test_one_changed_pin_installs_one_package(tmp_path):
    cache = tmp_path / "cache"
    source = layer(tmp_path / "pins", MY_LAYER)
    build_layer(source, TARGET_312, cache_dir=cache, report=quiet)
    (source / "requirements.txt").write_text(MY_LAYER.replace("typing-inspection==0.4.5", "typing-inspection==0.4.4"))
    changed = build_layer(source, TARGET_312, cache_dir=cache, report=quiet)
    assert changed.package_cache == {"reused": 4, "installed": 1}
    assert "typing-inspection==0.4.4" in changed.packages


@pytest.mark.parametrize("other", [Target("python3.13", "x86_64"), Target("python3.12", "arm64")],
                         ids=["another-python", "another-architecture"])
def test_a_package_entry_is_never_reused_for_another_target(tmp_path, other):
    cache = tmp_path / "cache"
    source = layer(tmp_path / "targets", MY_LAYER)
    build_layer(source, TARGET_312, cache_dir=cache, report=quiet)
    again = build_layer(source, other, cache_dir=cache, report=quiet)
    assert again.package_cache == {"reused": 0, "installed": 5}
    with zipfile.ZipFile(again.zip) as archive:
        (extension,) = [n for n in archive.namelist() if n.endswith(".so")]
    assert f"cpython-3{other.python_version[2:]}-{other.machine}" in extension


def test_a_package_entry_is_never_reused_for_another_wheel_of_the_same_name_and_version(tmp_path):
    cache = tmp_path / "cache"
    source = layer(tmp_path / "wheels", "./wheels/kit_local-1.0-py3-none-any.whl\n")
    make_wheel(source / "wheels", "kit-local", {"kit_local.py": "WHO = 'first build'\n"})
    build_layer(source, TARGET_312, cache_dir=cache, report=quiet, bytecode=False)
    make_wheel(source / "wheels", "kit-local", {"kit_local.py": "WHO = 'rebuilt wheel'\n"})  # same name, same version
    rebuilt = build_layer(source, TARGET_312, cache_dir=cache, report=quiet, bytecode=False)
    assert rebuilt.package_cache == {"reused": 0, "installed": 1}
    with zipfile.ZipFile(rebuilt.zip) as archive:
        assert archive.read("python/kit_local.py") == b"WHO = 'rebuilt wheel'\n"


def test_an_exactly_pinned_declaration_whose_packages_are_cached_needs_no_installer(tmp_path, monkeypatch):
    from layerkit.core import uv

    cache = tmp_path / "cache"
    build_layer(layer(tmp_path / "first", MY_LAYER), TARGET_312, cache_dir=cache, report=quiet)

    def no_installer(*args, **kwargs):
        raise AssertionError("uv ran")

    monkeypatch.setattr(uv, "_run", no_installer)
    second = build_layer(layer(tmp_path / "second", MY_LAYER, module="other"), TARGET_312,
                         cache_dir=cache, report=quiet)
    assert second.package_cache == {"reused": 5, "installed": 0}
    monkeypatch.undo()
    cold = build_layer(layer(tmp_path / "cold", MY_LAYER, module="other"), TARGET_312,
                       cache_dir=tmp_path / "cold-cache",
                       report=quiet)
    assert second.sha256 == cold.sha256


def test_pins_that_leave_out_a_dependency_are_resolved_not_taken_from_the_cache(tmp_path):
    # python-dateutil needs six; a pin of dateutil alone must still give a layer with six, cache or no cache.
    cache = tmp_path / "cache"
    source = layer(tmp_path / "partial", "python-dateutil==2.9.0.post0\n")
    first = build_layer(source, TARGET_312, cache_dir=cache, report=quiet, bytecode=False)
    (source / "python" / "mod.py").write_text("VALUE = 2\n")  # a new build of the same pins
    second = build_layer(source, TARGET_312, cache_dir=cache, report=quiet, bytecode=False)
    assert first.packages == second.packages == ["python-dateutil==2.9.0.post0", "six==1.17.0"]


def test_exact_pins_that_uv_has_cached_build_with_the_index_unreachable(tmp_path, monkeypatch):
    # A warm uv cache (the user's other projects, a CI cache) and an empty kit cache: no index is needed.
    monkeypatch.setenv("UV_CACHE_DIR", str(tmp_path / "uv-cache"))
    source = layer(tmp_path / "offline", MY_LAYER)
    online = build_layer(source, TARGET_312, cache_dir=tmp_path / "first", report=quiet)
    for proxy in ("HTTPS_PROXY", "HTTP_PROXY", "ALL_PROXY"):  # nothing listens on port 9: no network
        monkeypatch.setenv(proxy, "http://127.0.0.1:9")
    monkeypatch.delenv("NO_PROXY", raising=False)
    offline = build_layer(source, TARGET_312, cache_dir=tmp_path / "second", report=quiet)
    assert offline.sha256 == online.sha256
    # Whereas with nothing cached anywhere the unreachable network is what the build reports.
    monkeypatch.setenv("UV_CACHE_DIR", str(tmp_path / "empty-uv-cache"))
    monkeypatch.setenv("UV_HTTP_RETRIES", "0")
    with pytest.raises(BuildError, match="Failed to fetch"):
        build_layer(source, TARGET_312, cache_dir=tmp_path / "third", report=quiet)


def test_a_warm_uv_cache_never_decides_an_unpinned_dependency(tmp_path, monkeypatch):
    # python-dateutil needs six, which this declaration leaves to the resolver: the newest six, as with an empty
    # cache, not an older one that uv happens to hold from another project.
    monkeypatch.setenv("UV_CACHE_DIR", str(tmp_path / "uv-cache"))
    build_layer(layer(tmp_path / "other", "python-dateutil==2.9.0.post0\nsix==1.16.0\n"), TARGET_312,
                cache_dir=tmp_path / "other-cache", report=quiet, bytecode=False)
    built = build_layer(layer(tmp_path / "mine", "python-dateutil==2.9.0.post0\n"), TARGET_312,
                        cache_dir=tmp_path / "cache",
                        report=quiet, bytecode=False)
    assert built.packages == ["python-dateutil==2.9.0.post0", "six==1.17.0"]
