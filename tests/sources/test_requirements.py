"""requirements.txt (layerkit.sources.requirements): includes, constraints, encodings, markers for the target, local
wheels and path packages."""

from __future__ import annotations

import zipfile

import pytest

from layerkit.assemble.local_build import build_layer
from layerkit.core.errors import (
    LayerSourceError,
)
from layerkit.core.targets import Target
from tests.conftest import make_wheel
from tests.helpers import LOCKED, TARGET_312, layer_folder, make_layer, one_line_cli_error, quiet
from tests.lock_projects import LOCKED_ORJSON, NEWER_ORJSON


def names_in(build) -> list[str]:
    with zipfile.ZipFile(build.zip) as archive:
        return archive.namelist()


def test_missing_requirements_file_is_a_layer_of_pure_code(tmp_path):
    layer = make_layer(tmp_path, None)
    build = build_layer(layer, TARGET_312, cache_dir=tmp_path / "cache", bytecode=False)
    with zipfile.ZipFile(build.zip) as archive:
        assert [n for n in archive.namelist() if not n.endswith("/")] == ["python/mod.py"]
    assert (build.packages, build.warnings) == ([], [])


def test_unreadable_requirement_names_the_line(tmp_path):
    layer = make_layer(tmp_path, "pydantic==2.14.3\npydantic = 2\n")
    with pytest.raises(LayerSourceError, match=r"requirements.txt:2: cannot read requirement 'pydantic = 2'") as error:
        build_layer(layer, TARGET_312, cache_dir=tmp_path / "cache")
    assert "\n" not in str(error.value)  # one line, without the parser's caret below the requirement


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
