"""The alpha's API (layerkit.constructs.alpha): an app written for aws_lambda_python_alpha switches by its import line
and gets the same template, the alpha's options honoured or refused by name."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import pytest
from aws_cdk import App, Stack
from aws_cdk import aws_lambda as lambda_

import layerkit
from layerkit import BundlingOptions, PythonFunction, PythonLayerVersion
from tests.conftest import ROOT, app_context, write
from tests.helpers import assert_told, stack

ALPHA_APP = textwrap.dedent('''
    import sys
    import layerkit  # quiets the jsii banner; the app itself is the alpha's
    from aws_cdk import App, RemovalPolicy, Stack
    from aws_cdk import aws_lambda as lambda_
    IMPORT_LINE

    app = App()
    stack = Stack(app, "orders")
    helpers = PythonLayerVersion(
        stack, "Helpers", entry="layers/helpers",
        compatible_runtimes=[lambda_.Runtime.PYTHON_3_11, lambda_.Runtime.PYTHON_3_12, lambda_.Runtime.PYTHON_3_13],
        bundling=BundlingOptions(asset_excludes=["*.md", "notes"]),
        layer_version_name="orders-helpers", license="Apache-2.0", description="helpers for orders",
        removal_policy=RemovalPolicy.RETAIN)
    PythonFunction(stack, "Price", entry="lambdas/price", index="app.py", handler="main",
                   runtime=lambda_.Runtime.PYTHON_3_12, layers=[helpers], memory_size=256,
                   bundling=BundlingOptions(asset_excludes=["fixtures"]))
    app.synth()
''')


ALPHA_IMPORT = "from aws_cdk.aws_lambda_python_alpha import BundlingOptions, PythonFunction, PythonLayerVersion"


KIT_IMPORT = "from layerkit import BundlingOptions, PythonFunction, PythonLayerVersion"


@pytest.fixture(scope="module")
def migrated(tmp_path_factory, kit_cache):
    """The same app, synthesized with the alpha's import (no Docker: bundling skipped) and with the kit's."""
    folder = write(tmp_path_factory.mktemp("alpha-app"), {
        "layers/helpers/helpers.py": "def tax(x):\n    return round(x * 1.2, 2)\n",
        "layers/helpers/README.md": "not shipped\n", "layers/helpers/notes/todo.txt": "not shipped\n",
        "layers/helpers/requirements.txt": "six==1.17.0\n",
        "lambdas/price/app.py": "import helpers, six\n\ndef main(event, context):\n    return helpers.tax(10)\n",
        "lambdas/price/fixtures/big.json": "{}",
    })
    outdirs = {}
    for name, line, context in (("alpha", ALPHA_IMPORT, {"aws:cdk:bundling-stacks": []}),
                                ("kit", KIT_IMPORT, {"layerkit:builder": "local"})):
        (folder / f"{name}.py").write_text(ALPHA_APP.replace("IMPORT_LINE", line))
        outdir = folder / f"cdk.out-{name}"
        env = {**os.environ, "CDK_OUTDIR": str(outdir), "CDK_CONTEXT_JSON": json.dumps(context),
               "PYTHONPATH": str(ROOT)}
        proc = subprocess.run([sys.executable, f"{name}.py"], cwd=folder, env=env, capture_output=True, text=True,
                              timeout=600)
        assert proc.returncode == 0, proc.stderr[-3000:]
        outdirs[name] = outdir
    return folder, outdirs


def resources(outdir: Path) -> dict[str, dict]:
    return json.loads((outdir / "orders.template.json").read_text())["Resources"]


# -- the same template, property by property -------------------------------------------------------------------
REPRESENTATIVE_APPS = {
    # No architecture anywhere (the alpha writes none), two layers, a function in another stack, a handler below
    # the entry, environment and limits.
    "plain": textwrap.dedent('''
        import layerkit
        from aws_cdk import App, Duration, Stack
        from aws_cdk import aws_lambda as lambda_
        IMPORT_LINE

        app = App()
        shared = Stack(app, "shared")
        common = PythonLayerVersion(shared, "Common", entry="layers/common",
                                    compatible_runtimes=[lambda_.Runtime.PYTHON_3_12], description="common code")
        extra = PythonLayerVersion(shared, "Extra", entry="layers/extra",
                                   compatible_runtimes=[lambda_.Runtime.PYTHON_3_12], layer_version_name="extra")
        PythonFunction(shared, "Local", entry="lambdas/local", runtime=lambda_.Runtime.PYTHON_3_12,
                       layers=[common, extra], environment={"STAGE": "test"}, timeout=Duration.seconds(9))
        api = Stack(app, "api")
        PythonFunction(api, "Remote", entry="lambdas/remote", index="src/app.py", handler="main",
                       runtime=lambda_.Runtime.PYTHON_3_12, layers=[common], memory_size=512)
        app.synth()
    '''),
    # arm64 everywhere, with the platform line alpha apps carry, and python3.11.
    "arm": textwrap.dedent('''
        import layerkit
        from aws_cdk import App, Stack
        from aws_cdk import aws_lambda as lambda_
        IMPORT_LINE

        app = App()
        stack = Stack(app, "arm")
        layer = PythonLayerVersion(stack, "Deps", entry="layers/common",
                                   compatible_runtimes=[lambda_.Runtime.PYTHON_3_11],
                                   compatible_architectures=[lambda_.Architecture.ARM_64],
                                   bundling=BundlingOptions(platform="linux/arm64"))
        PythonFunction(stack, "Fn", entry="lambdas/local", runtime=lambda_.Runtime.PYTHON_3_11,
                       architecture=lambda_.Architecture.ARM_64, layers=[layer],
                       bundling=BundlingOptions(platform="linux/arm64"))
        app.synth()
    '''),
}


@pytest.fixture(scope="module")
def representative(tmp_path_factory, kit_cache):
    """Each representative app synthesized with the alpha (its bundling skipped) and with the kit (built locally,
    as where no Docker answers)."""
    folder = write(tmp_path_factory.mktemp("alpha-apps"), {
        "layers/common/common.py": "WHO = 'common'\n", "layers/common/requirements.txt": "six==1.17.0\n",
        "layers/extra/extra.py": "EXTRA = 1\n",
        "lambdas/local/index.py": "import common\n\ndef handler(event, context):\n    return common.WHO\n",
        "lambdas/remote/src/app.py": "import common\n\ndef main(event, context):\n    return common.WHO\n",
    })
    outdirs = {}
    for app_name, source in REPRESENTATIVE_APPS.items():
        for name, line, context in (("alpha", ALPHA_IMPORT, {"aws:cdk:bundling-stacks": []}),
                                    ("kit", KIT_IMPORT, {"layerkit:builder": "local"})):
            (folder / f"{app_name}-{name}.py").write_text(source.replace("IMPORT_LINE", line))
            outdir = folder / f"cdk.out-{app_name}-{name}"
            context = {**json.loads((ROOT / "cdk.json").read_text())["context"], **context}  # the recommended flags
            env = {**os.environ, "CDK_OUTDIR": str(outdir), "CDK_CONTEXT_JSON": json.dumps(context),
                   "PYTHONPATH": str(ROOT)}
            proc = subprocess.run([sys.executable, f"{app_name}-{name}.py"], cwd=folder, env=env, capture_output=True,
                                  text=True, timeout=600)
            assert proc.returncode == 0, proc.stderr[-3000:]
            outdirs[(app_name, name)] = outdir
    return outdirs


def without_code_location(resource: dict) -> dict:
    """A resource as CloudFormation compares it, but where its code is uploaded (the kit's key is its own)."""
    resource = json.loads(json.dumps(resource))
    resource.pop("Metadata", None)
    for part in ("Code", "Content"):
        location = resource.get("Properties", {}).get(part)
        if isinstance(location, dict):
            location.pop("S3Key", None)
    return resource


def test_the_import_line_alone_changes_and_the_logical_ids_stay(migrated):
    _, outdirs = migrated
    alpha, kit = resources(outdirs["alpha"]), resources(outdirs["kit"])
    kinds = ("AWS::Lambda::LayerVersion", "AWS::Lambda::Function", "AWS::IAM::Role")
    assert {lid: r["Type"] for lid, r in alpha.items() if r["Type"] in kinds} == \
        {lid: r["Type"] for lid, r in kit.items() if r["Type"] in kinds}
    (layer_id,) = [lid for lid, r in alpha.items() if r["Type"] == "AWS::Lambda::LayerVersion"]
    for key in ("LayerName", "LicenseInfo", "Description", "CompatibleRuntimes"):
        assert kit[layer_id]["Properties"][key] == alpha[layer_id]["Properties"][key], key
    assert kit[layer_id]["DeletionPolicy"] == alpha[layer_id]["DeletionPolicy"] == "Retain"
    (function_id,) = [lid for lid, r in alpha.items() if r["Type"] == "AWS::Lambda::Function"]
    assert kit[function_id]["Properties"]["Handler"] == alpha[function_id]["Properties"]["Handler"] == "app.main"
    assert kit[function_id]["Properties"]["MemorySize"] == 256


def test_the_layer_is_built_for_every_runtime_it_claims_with_the_entry_in_python(migrated):
    from layerkit.assembly import Assembly

    _, outdirs = migrated
    assembly = Assembly.load(outdirs["kit"])
    (layer,) = assembly.layers()
    assert layer.runtimes == ("python3.11", "python3.12", "python3.13")
    with zipfile.ZipFile(layer.asset) as archive:
        names = archive.namelist()
    assert "python/helpers.py" in names  # the entry is the code, under python/ as the alpha lays it out
    assert "python/six.py" in names  # pure: once, for every runtime
    assert not [n for n in names if n.endswith((".md", "todo.txt", "requirements.txt"))]
    for tag in ("311", "312", "313"):
        assert f"python/__pycache__/helpers.cpython-{tag}.pyc" in names
    function = assembly.function("orders/Price")
    with zipfile.ZipFile(function.code) as archive:
        assert not [n for n in archive.namelist() if "fixtures" in n]


def test_the_migrated_function_invokes_with_its_layer(migrated):
    from layerkit.assembly import Assembly
    from layerkit.invoke import invoke_function

    _, outdirs = migrated
    (result,) = invoke_function(Assembly.load(outdirs["kit"]).function("orders/Price"), [b"{}"], backend="sandbox")
    assert result.payload == 12.0


def test_a_keyword_the_alpha_does_not_take_names_the_one_meant(tmp_path):
    write(tmp_path / "layer", {"mod.py": ""})
    layer = PythonLayerVersion(stack(), "L", entry=tmp_path / "layer", compatible_runtime=[lambda_.Runtime.PYTHON_3_12])
    assert_told(layer, r"unknown argument 'compatible_runtime'; did you mean 'compatible_runtimes'\?", on="S/L")
    write(tmp_path / "fn", {"index.py": "def handler(e, c):\n    return 1\n"})
    function = PythonFunction(stack(), "F", entry=tmp_path / "fn", runtime=lambda_.Runtime.PYTHON_3_12, memory=256)
    assert_told(function, r"unknown argument 'memory'; did you mean 'memory_size'\?", on="S/F")
    function = PythonFunction(stack(), "G", entry=tmp_path / "fn", runtime=lambda_.Runtime.PYTHON_3_12,
                              bundling={"asset_exclude": ["x"]})
    assert_told(function, r"bundling: unknown argument 'asset_exclude'; did you mean 'asset_excludes'\?")


def test_the_alphas_python37_default_asks_for_the_runtimes(tmp_path):
    write(tmp_path / "layer", {"mod.py": ""})
    layer = PythonLayerVersion(stack(), "L", entry=tmp_path / "layer")
    assert_told(layer, r"give compatible_runtimes: the alpha's default is python3\.7")


def test_an_option_only_a_container_honours_stops_in_one_line_where_no_docker_answers(tmp_path, monkeypatch):
    import layerkit.constructs.alpha

    monkeypatch.setattr(layerkit.constructs.alpha, "docker_available", lambda: False)
    write(tmp_path / "layer", {"mod.py": ""})

    @__import__("jsii").implements(layerkit.ICommandHooks)
    class Hooks:
        def before_bundling(self, input_dir, output_dir):
            return []

        def after_bundling(self, input_dir, output_dir):
            return [f"touch {output_dir}/hooked.txt"]

    layer = PythonLayerVersion(stack(), "L", entry=tmp_path / "layer",
                               compatible_runtimes=[lambda_.Runtime.PYTHON_3_12],
                               bundling=BundlingOptions(command_hooks=Hooks()))
    assert_told(layer, r"bundling\.command_hooks runs only in the bundling container, and no Docker daemon answers")


def test_command_hooks_run_in_the_bundling_container_around_the_kits(tmp_path, lambda_images, kit_cache):
    write(tmp_path / "layer", {"mod.py": "X = 1\n", "requirements.txt": "six==1.17.0\n"})

    @__import__("jsii").implements(layerkit.ICommandHooks)
    class Hooks:
        def before_bundling(self, input_dir, output_dir):
            return [f"test -f {input_dir}/mod.py"]

        def after_bundling(self, input_dir, output_dir):
            return [f"echo hooked > {output_dir}/hooked.txt"]

    app = App(outdir=str(tmp_path / "cdk.out"), context={"layerkit:docker-network": "host"})
    layer = PythonLayerVersion(Stack(app, "S"), "L", entry=tmp_path / "layer",
                               compatible_runtimes=[lambda_.Runtime.PYTHON_3_13],
                               bundling=BundlingOptions(command_hooks=Hooks(), network="host"))
    app.synth()
    bundle = layer.code_asset.content
    assert (bundle / "python" / "hooked.txt").read_text() == "hooked\n"
    assert (bundle / "python" / "six.py").is_file()
    assert layer.builder == "docker"


def test_environment_is_honoured_by_the_local_build(tmp_path, locked, kit_cache, monkeypatch):
    # Both only on the tests' index; two exact pins to download are installed by two uv runs at once, each given
    # the index.
    monkeypatch.setenv("UV_CACHE_DIR", str(tmp_path / "uv-cache"))
    write(tmp_path / "layer", {"mod.py": "", "requirements.txt": "kit-armonly==1.0\nkit-devtool==1.0\n"})
    layer = PythonLayerVersion(stack(), "L", entry=tmp_path / "layer",
                               compatible_runtimes=[lambda_.Runtime.PYTHON_3_12],
                               bundling=BundlingOptions(environment={"PIP_INDEX_URL": locked.index.url()}),
                               builder="local")
    with zipfile.ZipFile(layer.code_asset.content) as archive:
        assert {"python/kit_armonly.py", "python/kit_devtool.py"} <= set(archive.namelist())


def test_a_custom_asset_hash_is_the_one_registered(tmp_path, kit_cache):
    write(tmp_path / "fn", {"index.py": "def handler(e, c):\n    return 1\n"})
    from aws_cdk import AssetHashType

    cdk_app = App(outdir=str(tmp_path / "cdk.out"), context=app_context())
    PythonFunction(Stack(cdk_app, "S"), "F", entry=tmp_path / "fn", runtime=lambda_.Runtime.PYTHON_3_12,
                   bundling=BundlingOptions(asset_hash="release-7", asset_hash_type=AssetHashType.CUSTOM))
    manifest = json.loads((Path(cdk_app.synth().directory) / "S.assets.json").read_text())
    import hashlib

    assert hashlib.sha256(b"release-7").hexdigest() in {a["source"]["path"].removeprefix("asset.").split(".")[0]
                                                         for a in manifest["files"].values()}


def test_an_alpha_matrix_layer_ships_aarch64_code_for_each_runtime_in_its_arm64_version(tmp_path, locked, kit_cache):
    from tests.lock_projects import LOCKED_ORJSON

    write(tmp_path / "layer", {"mod.py": "", "requirements.txt": f"--index-url {locked.index.url()}\n"
                                                                 f"orjson=={LOCKED_ORJSON}\n"})
    layer = PythonLayerVersion(stack(), "L", entry=tmp_path / "layer",
                               compatible_runtimes=[lambda_.Runtime.PYTHON_3_12, lambda_.Runtime.PYTHON_3_13],
                               compatible_architectures=[lambda_.Architecture.X86_64, lambda_.Architecture.ARM_64])
    assert [v.variant.architectures for v in layer.versions] == [("x86_64",), ("arm64",)]
    assert layer.versions[0].layer_version is layer  # the alpha's construct is its first version
    arm = layer.versions[1]
    with zipfile.ZipFile(arm.content) as archive:
        for runtime in ("3.12", "3.13"):
            (extension,) = [n for n in archive.namelist()
                            if n.startswith(f"python/lib/python{runtime}/site-packages/orjson/") and n.endswith(".so")]
            assert int.from_bytes(archive.read(extension)[18:20], "little") == 183  # EM_AARCH64


@pytest.mark.parametrize("app_name", sorted(REPRESENTATIVE_APPS))
def test_every_resource_of_a_migrated_app_is_the_alphas_but_where_its_code_is_uploaded(representative, app_name):
    for template in sorted(p.name for p in representative[(app_name, "alpha")].glob("*.template.json")):
        alpha = json.loads((representative[(app_name, "alpha")] / template).read_text())
        kit = json.loads((representative[(app_name, "kit")] / template).read_text())
        assert sorted(kit["Resources"]) == sorted(alpha["Resources"]), template
        for logical_id, resource in alpha["Resources"].items():
            assert without_code_location(kit["Resources"][logical_id]) == without_code_location(resource), \
                f"{template}: {logical_id}"
        assert kit.get("Outputs") == alpha.get("Outputs"), template


def test_the_platform_line_builds_arm64_code_without_docker(representative):
    from layerkit.assembly import Assembly

    assembly = Assembly.load(representative[("arm", "kit")])
    (layer,) = assembly.layers()
    assert layer.architectures == ("arm64",)
    assert assembly.function("arm/Fn").architecture == "arm64"


@pytest.mark.parametrize(("construct", "message"), [
    ("function-no-architecture", "bundling.platform linux/arm64 builds for arm64, but no architecture is given, so "
                                 "Lambda runs it on x86_64: its compiled wheels would not load; give "
                                 "architecture=lambda_.Architecture.ARM_64, or drop bundling.platform"),
    ("layer-other-architecture", "bundling.platform linux/amd64 builds for x86_64, but compatible_architectures is "
                                 "arm64: its compiled wheels would not load; give "
                                 "compatible_architectures=[lambda_.Architecture.X86_64], or drop bundling.platform"),
    ("unknown-platform", "bundling.platform 'linux/s390x' is not a Lambda architecture"),
])
def test_a_platform_that_contradicts_the_architecture_is_one_line(tmp_path, construct, message):
    write(tmp_path / "code", {"index.py": "def handler(e, c):\n    return 1\n"})
    runtimes = [lambda_.Runtime.PYTHON_3_12]
    make = {
        "function-no-architecture": lambda: PythonFunction(
            stack(), "F", entry=tmp_path / "code", runtime=runtimes[0],
            bundling=BundlingOptions(platform="linux/arm64")),
        "layer-other-architecture": lambda: PythonLayerVersion(
            stack(), "L", entry=tmp_path / "code", compatible_runtimes=runtimes,
            compatible_architectures=[lambda_.Architecture.ARM_64], bundling=BundlingOptions(platform="linux/amd64")),
        "unknown-platform": lambda: PythonLayerVersion(
            stack(), "L", entry=tmp_path / "code", compatible_runtimes=runtimes,
            bundling=BundlingOptions(platform="linux/s390x")),
    }[construct]
    assert message in assert_told(make(), "")


def test_the_fix_for_an_option_that_needs_the_container_is_to_drop_it(tmp_path, monkeypatch):
    from aws_cdk import DockerImage

    import layerkit.constructs.alpha

    monkeypatch.setattr(layerkit.constructs.alpha, "docker_available", lambda: False)
    write(tmp_path / "layer", {"mod.py": ""})
    layer = PythonLayerVersion(stack(), "L", entry=tmp_path / "layer",
                               compatible_runtimes=[lambda_.Runtime.PYTHON_3_12],
                               bundling=BundlingOptions(image=DockerImage.from_registry("my/builder")))
    assert_told(layer, r"bundling\.image runs only in the bundling container, and no Docker daemon answers: start "
                       r"Docker, or drop bundling\.image to build without it$")
