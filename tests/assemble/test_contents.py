"""What one build's zip holds (layerkit.assemble.contents): the packages and the folder's own code merged in pip's
order, a file two packages ship decided by their dependency, a module of the folder never replaced by a
dependency's."""

from __future__ import annotations

import hashlib
import zipfile

import pytest

from layerkit.assemble.local_build import build_function, build_layer
from layerkit.core.errors import BuildError, LayerSourceError
from layerkit.core.targets import Target
from tests.conftest import make_wheel
from tests.helpers import TARGET_312, assert_nothing_cached, make_layer, quiet


def test_module_that_a_requirement_also_installs_is_refused(tmp_path):
    layer = make_layer(tmp_path, "six==1.17.0\n", module="six.py")
    with pytest.raises(LayerSourceError, match=r"python/six.py is also installed by six \(a dependency\); rename"):
        build_layer(layer, TARGET_312, cache_dir=tmp_path / "cache")
    assert_nothing_cached(tmp_path / "cache")


def test_two_unrelated_requirements_shipping_one_file_are_refused(tmp_path):
    # Neither needs the other, so no install order says whose helpers.py the layer should hold.
    layer = make_layer(tmp_path, "--no-index\n--find-links wheels\nkit-one==1.0\nkit-two==1.0\n")
    make_wheel(layer / "wheels", "kit-one", {"helpers.py": "WHO = 'one'\n"})
    make_wheel(layer / "wheels", "kit-two", {"helpers.py": "WHO = 'two'\n"})
    with pytest.raises(BuildError, match=r"kit-one and kit-two both ship helpers.py with different content, and "
                                         r"neither depends on the other.*keep only one of them"):
        build_layer(layer, TARGET_312, cache_dir=tmp_path / "cache")
    assert_nothing_cached(tmp_path / "cache")


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


def test_a_function_whose_handler_module_does_not_compile_stops_its_build(tmp_path):
    """A handler module is imported at every cold start: not compiling is an error, not the warning a module
    deeper in the folder gets (one nothing may import)."""
    function = tmp_path / "fn"
    (function / "tools").mkdir(parents=True)
    (function / "index.py").write_text("def handler(event, context:\n    return 1\n")
    with pytest.raises(LayerSourceError, match=r"^function fn: index\.py does not compile for Python 3\.12 "
                                               r"\(SyntaxError: .*line 1\)\); a module at the top of a function's "
                                               r"folder is the handler's"):
        build_function(function, Target("python3.12", "x86_64"), cache_dir=tmp_path / "cache", report=quiet)
    (function / "index.py").write_text("def handler(event, context):\n    return 1\n")
    (function / "tools" / "legacy.py").write_text('print "a Python 2 script"\n')
    build = build_function(function, Target("python3.12", "x86_64"), cache_dir=tmp_path / "cache", report=quiet)
    assert "tools/legacy.py: SyntaxError" in build.warnings[0]
