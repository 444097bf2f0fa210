"""The package cache (layerkit.install.package_cache): each distribution compressed once (once per target where it
ships compiled code) and compiled once per Python and place, whatever kind of build asks; never reused for another
wheel, and compiled code never for another target."""

from __future__ import annotations

import marshal
import zipfile
from pathlib import Path

import pytest

from layerkit.assemble.local_build import build_function, build_layer
from layerkit.core.errors import BuildError
from layerkit.core.targets import Target
from tests.conftest import make_wheel
from tests.helpers import MY_LAYER, TARGET_312, entries, layer, quiet


def test_a_second_layer_sharing_packages_installs_only_what_it_adds(tmp_path):
    cache = tmp_path / "cache"
    first = build_layer(layer(tmp_path / "first", MY_LAYER), TARGET_312, cache_dir=cache, report=quiet)
    second_source = layer(tmp_path / "second", MY_LAYER + "six==1.17.0\n", module="other")
    second = build_layer(second_source, TARGET_312, cache_dir=cache, report=quiet)
    assert first.package_cache == {"reused": 0, "compiled": 0, "installed": 5}
    assert second.package_cache == {"reused": 5, "compiled": 0, "installed": 1}
    assert len(entries(cache)) == 6
    # Assembled from cached members, it is byte for byte the layer a cold build makes.
    cold = build_layer(second_source, TARGET_312, cache_dir=tmp_path / "cold", report=quiet)
    assert (cold.package_cache, cold.sha256) == ({"reused": 0, "compiled": 0, "installed": 6}, second.sha256)


def test_one_changed_pin_installs_one_package(tmp_path):
    cache = tmp_path / "cache"
    source = layer(tmp_path / "pins", MY_LAYER)
    build_layer(source, TARGET_312, cache_dir=cache, report=quiet)
    (source / "requirements.txt").write_text(MY_LAYER.replace("typing-inspection==0.4.5", "typing-inspection==0.4.4"))
    changed = build_layer(source, TARGET_312, cache_dir=cache, report=quiet)
    assert changed.package_cache == {"reused": 4, "compiled": 0, "installed": 1}
    assert "typing-inspection==0.4.4" in changed.packages


@pytest.mark.parametrize(("other", "counts"), [
    (Target("python3.13", "x86_64"), {"reused": 0, "compiled": 4, "installed": 1}),
    (Target("python3.12", "arm64"), {"reused": 4, "compiled": 0, "installed": 1}),
], ids=["another-python", "another-architecture"])
def test_compiled_code_is_never_reused_for_another_target_and_pure_packages_are_compressed_once(tmp_path, other,
                                                                                                counts):
    # pydantic-core ships an extension module: its own for each target. The four pure packages are the same files
    # for every target: another Python compiles their .pyc, another architecture takes them whole.
    cache = tmp_path / "cache"
    source = layer(tmp_path / "targets", MY_LAYER)
    build_layer(source, TARGET_312, cache_dir=cache, report=quiet)
    again = build_layer(source, other, cache_dir=cache, report=quiet)
    assert again.package_cache == counts
    with zipfile.ZipFile(again.zip) as archive:
        (extension,) = [n for n in archive.namelist() if n.endswith(".so")]
        compiled = [n for n in archive.namelist() if n.endswith(".pyc")]
    assert f"cpython-3{other.python_version[2:]}-{other.machine}" in extension
    assert compiled
    assert all(f".cpython-3{other.python_version[2:]}.pyc" in n for n in compiled)
    cold = build_layer(source, other, cache_dir=tmp_path / "cold", report=quiet)
    assert cold.sha256 == again.sha256


def test_a_function_takes_the_files_a_layer_compressed_and_compiles_its_own_pyc(tmp_path):
    # The same packages in a layer (/opt/python) and in a function (/var/task): compressed once, and each .pyc
    # names the path its source has on Lambda.
    cache = tmp_path / "cache"
    build_layer(layer(tmp_path / "layer", MY_LAYER), TARGET_312, cache_dir=cache, report=quiet)
    function = tmp_path / "function"
    function.mkdir()
    (function / "index.py").write_text("def handler(event, context):\n    return 1\n")
    (function / "requirements.txt").write_text(MY_LAYER)
    built = build_function(function, TARGET_312, cache_dir=cache, report=quiet)
    assert built.package_cache == {"reused": 0, "compiled": 5, "installed": 0}
    with zipfile.ZipFile(built.zip) as archive:
        pyc = archive.read("pydantic/__pycache__/__init__.cpython-312.pyc")
    assert marshal.loads(pyc[16:]).co_filename == "/var/task/pydantic/__init__.py"
    cold = build_function(function, TARGET_312, cache_dir=tmp_path / "cold", report=quiet)
    assert (cold.package_cache["installed"], cold.sha256) == (5, built.sha256)


def test_a_package_entry_is_never_reused_for_another_wheel_of_the_same_name_and_version(tmp_path):
    cache = tmp_path / "cache"
    source = layer(tmp_path / "wheels", "./wheels/kit_local-1.0-py3-none-any.whl\n")
    make_wheel(source / "wheels", "kit-local", {"kit_local.py": "WHO = 'first build'\n"})
    build_layer(source, TARGET_312, cache_dir=cache, report=quiet, bytecode=False)
    make_wheel(source / "wheels", "kit-local", {"kit_local.py": "WHO = 'rebuilt wheel'\n"})  # same name, same version
    rebuilt = build_layer(source, TARGET_312, cache_dir=cache, report=quiet, bytecode=False)
    assert rebuilt.package_cache == {"reused": 0, "compiled": 0, "installed": 1}
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
    assert second.package_cache == {"reused": 5, "compiled": 0, "installed": 0}
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
    # The first build installed dateutil as pinned, found six missing and resolved: both are its own work.
    assert first.package_cache == {"reused": 0, "compiled": 0, "installed": 2}


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


def test_a_cold_build_of_a_complete_pinned_set_resolves_nothing(tmp_path, monkeypatch):
    # my_layer's requirements are uv pip compile's output: they are already a resolution. Installing them as
    # pinned (as a lock is) spares the resolver's round trips to the index; nothing else starts uv.
    from layerkit.core import children

    commands: list[list[str]] = []
    real = children.run

    def recording(command, *args, **kwargs):
        commands.append([str(part) for part in command])
        return real(command, *args, **kwargs)

    monkeypatch.setattr(children, "run", recording)
    built = build_layer(layer(tmp_path / "pinned", MY_LAYER), TARGET_312, cache_dir=tmp_path / "cache", report=quiet)
    uv_runs = [[*command[1:3], "--no-deps" in command] for command in commands if "uv" in Path(command[0]).name]
    assert uv_runs
    assert all(run == ["pip", "install", True] for run in uv_runs), uv_runs
    assert built.packages == [line for line in MY_LAYER.splitlines() if line and not line.startswith("#")]


def test_pins_that_hold_a_dependency_at_a_version_another_refuses_are_resolved_not_shipped(tmp_path):
    # pydantic 2.14.3 requires pydantic-core==2.50.4: installed as pinned, the two would fail at import on Lambda.
    # The set is resolved instead, and the resolver says why it cannot be.
    source = layer(tmp_path / "inconsistent", MY_LAYER.replace("pydantic-core==2.50.4", "pydantic-core==2.50.5"))
    with pytest.raises(BuildError, match="pydantic-core") as raised:
        build_layer(source, TARGET_312, cache_dir=tmp_path / "cache", report=quiet, bytecode=False)
    assert "\n" not in str(raised.value)


@pytest.mark.parametrize(("installed", "met"), [
    ({"a": ("1.0", ("b>=2",)), "b": ("2.1", ())}, True),
    ({"a": ("1.0", ("b>=2",)), "b": ("1.9", ())}, False),  # present, at a version a refuses
    ({"a": ("1.0", ("b[fast]",)), "b": ("1.0", ('c; extra == "fast"',))}, False),  # an extra's dependency missing
    ({"a": ("1.0", ("b[fast]",)), "b": ("1.0", ('c; extra == "fast"',)), "c": ("1.0", ())}, True),
    ({"a": ("1.0", ('c; python_version < "3"',))}, True),  # not for this target
], ids=["accepted", "refused-version", "extra-missing", "extra-met", "marker-false"])
def test_a_set_installed_without_resolving_is_complete_only_as_a_resolver_would_have_it(installed, met):
    from layerkit.install.package_cache import dependencies_met

    assert dependencies_met(installed, TARGET_312.marker_environment()) is met


@pytest.mark.parametrize("pins", ["idna==3.20\nidna==3.10\n", "idna==3.10\nurllib3==2.5.0\nurllib3==1.26.20\n"],
                         ids=["one-package-twice", "a-dependency-twice"])
def test_two_pins_of_one_package_are_refused_never_both_shipped(tmp_path, pins):
    # Installed as pinned, in two uv runs, both versions would land, one's files over the other's.
    with pytest.raises(BuildError, match=r"idna|urllib3") as raised:
        build_layer(layer(tmp_path / "twice", pins), TARGET_312, cache_dir=tmp_path / "cache", report=quiet,
                    bytecode=False)
    assert "\n" not in str(raised.value)


@pytest.mark.parametrize("cached", [False, True], ids=["cold", "its-unhashed-pin-cached"])
def test_one_hash_puts_every_pin_in_hash_checking_mode(tmp_path, cached):
    # pip's rule: a file with one --hash needs one for every requirement; a pin without is refused, whether it
    # would be installed or found in the package cache.
    certifi = ("certifi==2026.10.19.post1 "
               "--hash=sha256:1324c476b4811eff41a8bc2122cd0bbd4d9c7234c725446d99ab1612b3a7fdd2\n")
    cache = tmp_path / "cache"
    if cached:
        build_layer(layer(tmp_path / "plain", "idna==3.10\n"), TARGET_312, cache_dir=cache, report=quiet,
                    bytecode=False)
    with pytest.raises(BuildError, match="idna") as raised:
        build_layer(layer(tmp_path / "hashed", "idna==3.10\n" + certifi), TARGET_312, cache_dir=cache,
                    report=quiet, bytecode=False)
    assert "hash" in str(raised.value)


def test_a_relative_uv_cache_dir_is_where_the_user_runs_the_build_never_in_the_layer(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("UV_CACHE_DIR", "uv-cache")
    source = layer(tmp_path / "relative", "six==1.17.0\n")
    build_layer(source, TARGET_312, cache_dir=tmp_path / "cache", report=quiet, bytecode=False)
    assert sorted(p.name for p in source.iterdir()) == ["python", "requirements.txt"]
    assert any((tmp_path / "uv-cache").glob("wheels-v*/*/six"))
