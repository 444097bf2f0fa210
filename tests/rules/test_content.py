"""A layer's content (layerkit.rules.content): modules at the top of python/, nothing one level too deep, packages with
__init__.py."""

from __future__ import annotations

import zipfile

import pytest
from aws_cdk import aws_lambda as lambda_

from layerkit import SharedPythonLayer
from layerkit.assemble.local_build import build_layer
from layerkit.core.errors import LayerSourceError
from tests.conftest import write
from tests.helpers import (
    PY312,
    Checked,
    assert_nothing_cached,
    assert_told,
    cli,
    make_layer,
    only,
    stack,
)


def test_a_layer_of_dependencies_alone_needs_no_python_folder(tmp_path, kit_cache):
    write(tmp_path / "deps", {"requirements.txt": "six==1.17.0\n"})
    layer = SharedPythonLayer(stack(), "Deps", entry=tmp_path / "deps", runtime=lambda_.Runtime.PYTHON_3_12,
                              bytecode=False)
    with zipfile.ZipFile(layer.code.content) as archive:
        assert [n for n in archive.namelist() if not n.endswith("/")] == [
            "python/six-1.17.0.dist-info/INSTALLER", "python/six-1.17.0.dist-info/LICENSE",
            "python/six-1.17.0.dist-info/METADATA", "python/six-1.17.0.dist-info/RECORD",
            "python/six-1.17.0.dist-info/WHEEL", "python/six-1.17.0.dist-info/top_level.txt", "python/six.py"]


def test_a_layer_without_a_python_folder_is_refused_by_the_build_the_command_line_and_the_check(tmp_path, kit_cache):
    """One rule (no-python-folder), whoever applies it: the kit's build, ``layerkit build``, and the check of a
    layer zipped by hand."""
    layer = make_layer(tmp_path, "", module=None)
    (layer / "mod.py").write_text("VALUE = 1\n")
    with pytest.raises(LayerSourceError, match=r"has no python/ folder.*move the layer's modules into"):
        build_layer(layer, PY312, cache_dir=tmp_path / "cache")
    # On the command line, such a folder is a function unless --layer says otherwise (tests/test_cli.py).
    result = cli("build", str(layer), "--layer", "--runtime", "python3.12", "--arch", "x86_64",
                 "--cache-dir", str(tmp_path / "cache"))
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1
    assert "Traceback" not in result.stderr
    assert "has no python/ folder" in result.stderr
    assert_nothing_cached(tmp_path / "cache")
    # A layer zipped by hand: the synth's check says it on the layer.
    app = Checked(tmp_path / "app")
    flat = write(tmp_path / "flat", {"helpers.py": "X = 1\n"})
    flat_layer = lambda_.LayerVersion(app.stack, "Flat", code=lambda_.Code.from_asset(str(flat)))
    app.function("Fn", [flat_layer])
    path, level, text = only(app.messages(), "no-python-folder")
    assert (path, level) == ("/S/Flat", "error")
    assert "has no python/ folder (found helpers.py): Lambda only puts /opt/python on sys.path" in text
    assert "move the modules into python/ at the root of the layer" in text


def test_every_module_sits_at_the_top_of_python(my_layer):
    with zipfile.ZipFile(my_layer.zip) as archive:
        names = archive.namelist()
    tops = {name.split("/")[1] for name in names if name.count("/") >= 1 and not name.endswith("python/")}
    assert all(name.startswith("python/") for name in names)
    assert {"my_layer.py", "pydantic", "pydantic_core", "annotated_types", "typing_extensions.py"} <= tops
    assert not [n for n in names if n.startswith("python/bin/")], "build-machine scripts shipped"


@pytest.mark.parametrize("nested", ["python/python/mod.py", "python/pkg/python/mod.py"])
def test_module_one_level_too_deep(tmp_path, kit_cache, nested):
    app = Checked(tmp_path)
    prebuilt = write(tmp_path / "deep", {nested: "X = 1\n"})  # zipped by hand, not by the kit
    app.function("Fn", [lambda_.LayerVersion(app.stack, "Deep", code=lambda_.Code.from_asset(str(prebuilt)))])
    path, level, text = only(app.messages(), "module-too-deep")
    assert (path, level) == ("/S/Deep", "error")
    assert "nests its modules one level too deep" in text
    assert "move their content up into python/" in text
    # The kit's own build applies the same rule, before anything is cached.
    assert_told(app.layer("deep", {nested: "X = 1\n"}), r"layer deep nests its modules one level too deep")


def test_package_without_init(tmp_path, kit_cache):
    app = Checked(tmp_path)
    app.function("Fn", [app.layer("pkgs", {"python/tools/a.py": "", "python/ok/__init__.py": "",
                                           "python/ok/b.py": ""})])
    path, level, text = only(app.messages(), "missing-init")
    assert (path, level) == ("/S/pkgs", "warning")
    assert "python/tools/ holds modules but no __init__.py" in text
    assert "add an empty python/tools/__init__.py" in text
