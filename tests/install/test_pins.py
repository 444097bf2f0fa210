"""Pinning a declaration for a target (layerkit.install.pins): unpinned requirements, missing wheels, hashes and
Requires-Python, each told with its fix."""

from __future__ import annotations

import zipfile

import pytest
from aws_cdk import App, Stack
from aws_cdk import aws_lambda as lambda_
from aws_cdk.assertions import Annotations, Match

from layerkit import PythonFunction, SharedPythonLayer
from layerkit.assemble.local_build import build_layer
from layerkit.core.errors import (
    BuildError,
    MissingWheelError,
)
from layerkit.core.targets import Target
from tests.conftest import app_context, make_wheel, write
from tests.helpers import (
    PY312,
    TARGET_312,
    Checked,
    assert_nothing_cached,
    assert_told,
    cli,
    make_layer,
    quiet,
)

SIX_WHEEL_SHA256 = "4721f391ed90541fddacab5acf947aa0d3dc7d27b2e1e8eda2be8970586c3274"  # six-1.17.0-py2.py3


def test_package_without_a_wheel_for_the_platform_is_named_with_the_fix(tmp_path):
    layer = make_layer(tmp_path, "docopt==0.6.2\n")  # published as a source archive only
    with pytest.raises(MissingWheelError) as error:
        build_layer(layer, TARGET_312, cache_dir=tmp_path / "cache")
    message = str(error.value)
    assert "docopt has no wheel for python3.12 on manylinux_2_34_x86_64" in message
    assert "pin a version of docopt that publishes a manylinux wheel" in message
    # Spelled for an app, where build_layer runs: the construct's keyword and the context key.
    assert "builder='docker' (or cdk synth -c layerkit:builder=docker)" in message
    assert "--builder docker" not in message
    assert_nothing_cached(tmp_path / "cache")


def test_unpinned_requirement_builds_with_a_warning(tmp_path, capfd):
    layer = make_layer(tmp_path, "six>=1.16\n")
    build = build_layer(layer, TARGET_312, cache_dir=tmp_path / "cache")
    assert build.warnings == [
        "layer bad_layer: requirement 'six>=1.16' is not pinned to one version (requirements.txt:1); pin it (e.g. "
        "'name==1.2.3') or lock it, so that every build installs the same code"
    ]
    assert "warning: layer bad_layer: requirement 'six>=1.16' is not pinned" in capfd.readouterr().err
    with zipfile.ZipFile(build.zip) as archive:
        assert "python/six.py" in archive.namelist()


def test_unpinned_requirement_is_a_synth_warning_on_the_construct(tmp_path, kit_cache):
    layer = make_layer(tmp_path, "six\n")
    stack = Stack(App(context=app_context()), "S")
    SharedPythonLayer(stack, "Six", entry=layer, runtime=lambda_.Runtime.PYTHON_3_12)
    Annotations.from_stack(stack).has_warning("/S/Six", Match.string_like_regexp("'six' is not pinned"))


def test_a_dependency_without_a_wheel_for_the_target_names_the_function(tmp_path, kit_cache):
    entry = write(tmp_path / "fn", {"index.py": "def handler(e, c):\n    return 1\n",
                                    "requirements.txt": "docopt==0.6.2\n"})  # a source archive only
    stack = Stack(App(context=app_context()), "S")
    PythonFunction(stack, "Fn", entry=entry, runtime=PY312)
    message = assert_told(stack, "", on="S/Fn")
    assert message.startswith("function S/Fn: requirements.txt:1 (docopt==0.6.2): docopt has no wheel for python3.12 "
                              "on manylinux_2_34_x86_64")


def test_unpinned_requirement_warns_on_the_layer(tmp_path, kit_cache):
    app = Checked(tmp_path)
    app.function("Fn", [app.layer("loose", {"python/m.py": "", "requirements.txt": "six\n"})])
    annotations = app.app.synth().get_stack_by_name("S").messages
    warnings = [m for m in annotations if "'six' is not pinned" in str(m.entry.data)]
    assert [(m.id, m.level.value.lower()) for m in warnings] == [("/S/loose", "warning")]


def test_hashed_requirements_are_verified(tmp_path):
    good = write(tmp_path / "good", {"python/m.py": "",
                                    "requirements.txt": f"six==1.17.0 --hash=sha256:{SIX_WHEEL_SHA256}\n"})
    build = build_layer(good, Target("python3.12", "x86_64"), cache_dir=tmp_path / "cache")
    assert build.packages == ["six==1.17.0"]
    bad = write(tmp_path / "bad", {"python/m.py": "", "requirements.txt": f"six==1.17.0 --hash=sha256:{'0' * 64}\n"})
    with pytest.raises(BuildError, match=r"layer bad: requirements.txt:1 \(six==1\.17\.0\): the file downloaded for "
                                         r"six==1\.17\.0 does not match any of "
                                         r"its --hash; if the new file is trusted, regenerate the hashes"):
        build_layer(bad, Target("python3.12", "x86_64"), cache_dir=tmp_path / "cache")


# -- 7. Requires-Python -----------------------------------------------------------------------------------------
def test_a_release_whose_requires_python_excludes_the_runtime_is_refused_naming_one_that_fits(tmp_path):
    from tests.package_index import PackageIndex

    wheels = tmp_path / "index"
    make_wheel(wheels, "kit-backport", {"kit_backport.py": "OLD = True\n"}, version="0.6")
    make_wheel(wheels, "kit-backport", {"kit_backport.py": "OLD = True\n"}, version="0.8",
               requires_python=">=3.6, <3.7")
    index = PackageIndex(wheels)
    try:
        layer = write(tmp_path / "old", {"python/mod.py": "", "requirements.txt": f"--index-url {index.url()}\n"
                                                                                   "kit-backport\n"})
        with pytest.raises(BuildError) as error:
            build_layer(layer, TARGET_312, cache_dir=tmp_path / "cache", report=quiet)
    finally:
        index.close()
    assert str(error.value) == (
        "layer old: kit-backport==0.8 requires Python >=3.6, <3.7, and python3.12 is Python 3.12: pin "
        "kit-backport==0.6, the newest release that supports it, or drop it if the standard library has it")


@pytest.mark.parametrize(("requirement", "fix"), [
    ("requests==99.0", "; pin a version of requests the package index has ('pip index versions requests' lists them)"),
    ("layerkit-no-such-project==1.0", "; check the spelling of layerkit-no-such-project: the package index has no "
                                      "project of that name"),
], ids=["no-such-release", "no-such-project"])
def test_a_release_that_does_not_exist_names_the_line_that_asks_for_it_and_the_fix(tmp_path, requirement, fix):
    layer = make_layer(tmp_path, f"six==1.17.0\n{requirement}\n")
    result = cli("build", str(layer), "--runtime", "python3.12", "--arch", "x86_64", "--cache-dir",
                 str(tmp_path / "cache"))
    assert result.returncode == 1
    (line,) = result.stderr.splitlines()
    assert line.startswith(f"layerkit: error: layer bad_layer: requirements.txt:2 ({requirement}): installing for "
                           "python3.12/x86_64 failed:"), line
    assert line.endswith(fix), line
