"""The guardrails (layerkit.checks): Lambda's rules applied at synth (layerkit.check(app)) and on a synthesized
assembly (layerkit check), each finding on the construct at fault."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile

from aws_cdk import App, Stack
from aws_cdk import aws_lambda as lambda_

import layerkit
from tests.conftest import ROOT, app_context, synth_messages, write
from tests.helpers import ARM, PY313, X86, Checked, cli, only


def test_check_runs_the_guardrails_on_a_synthesized_assembly(example, kit_cache, tmp_path):
    clean = cli("check", "--assembly", str(example.app.outdir))
    assert clean.returncode == 0, clean.stdout + clean.stderr
    assert not [line for line in clean.stdout.splitlines() if line.startswith("error")]

    # An app without layerkit.check(app): its synth lets an x86_64 layer reach an arm64 function.
    from aws_cdk import App, Stack
    from aws_cdk import aws_lambda as lambda_

    from layerkit import SharedPythonLayer
    from tests.conftest import LAYERS, app_context

    app = App(outdir=str(tmp_path / "cdk.out"), context=app_context())
    stack = Stack(app, "S")
    layer = SharedPythonLayer(stack, "Layer", entry=LAYERS / "my_layer", runtime=lambda_.Runtime.PYTHON_3_12)
    code = tmp_path / "code"
    code.mkdir()
    (code / "index.py").write_text("def handler(event, context):\n    return 1\n")
    lambda_.Function(stack, "Fn", runtime=lambda_.Runtime.PYTHON_3_12, architecture=lambda_.Architecture.ARM_64,
                     handler="index.handler", code=lambda_.Code.from_asset(str(code)), layers=[layer.layer_version])
    lambda_.Function(stack, "Inline", runtime=lambda_.Runtime.PYTHON_3_12, handler="index.handler",
                     code=lambda_.Code.from_inline("def handler(e, c): return 1"))  # not the kit's to read: skipped
    app.synth()
    broken = cli("check", "--assembly", str(tmp_path / "cdk.out"), "--json")
    assert broken.returncode == 1, broken.stderr
    (finding,) = [f for f in json.loads(broken.stdout) if f["severity"] == "error"]
    assert finding["path"] == "S/Fn"
    assert finding["rule"] == "layerkit:architecture-mismatch"
    assert "is built for x86_64, the function is arm64" in finding["message"]


def test_annotations_come_without_a_stray_source_position_line(tmp_path):
    """The CDK CLI prints an annotation's first stack frame above it: in a Python app, the jsii runtime's."""

    layer = tmp_path / "unpinned"
    (layer / "python").mkdir(parents=True)
    (layer / "python" / "mod.py").write_text("import six\n")
    (layer / "requirements.txt").write_text("six\n")  # unpinned: a warning annotation
    (tmp_path / "app.py").write_text(
        "import layerkit\n"
        "from aws_cdk import App, Stack\n"
        "from aws_cdk import aws_lambda as lambda_\n"
        "app = App()\n"
        "layerkit.SharedPythonLayer(Stack(app, 'S'), 'L', entry='unpinned', runtime=lambda_.Runtime.PYTHON_3_12)\n"
        "app.synth()\n")
    (tmp_path / "cdk.json").write_text(json.dumps({"app": f"{sys.executable} app.py",
                                                   "context": {"layerkit:builder": "local"}}))
    result = subprocess.run([str(ROOT / "node_modules" / ".bin" / "cdk"), "synth", "--quiet"], cwd=tmp_path,
                            capture_output=True, text=True, timeout=300, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert result.returncode == 0, result.stderr
    output = result.stdout + result.stderr
    assert "unpinned" in output
    assert "layerkit:unpinned-requirement" in output
    assert "program.js" not in output


def test_more_than_five_layers(tmp_path, kit_cache):
    app = Checked(tmp_path)
    layers = [app.layer(f"l{i}", {f"python/m{i}.py": ""}) for i in range(6)]
    function = app.function("Fn", layers[:5])  # the L2 construct itself refuses a sixth...
    # ...but the escape hatch does not, and CloudFormation only says no at deploy time.
    function.node.default_child.layers = [layer.layer_version.layer_version_arn for layer in layers]
    path, level, text = only(app.messages(), "too-many-layers")
    assert (path, level) == ("/S/Fn", "error")
    assert "the function has 6 layers; Lambda allows 5" in text


def test_runtime_mismatch(tmp_path, kit_cache):
    app = Checked(tmp_path)
    app.function("Fn", [app.layer("for312", {"python/m.py": ""})], runtime=PY313, stack=app.consumer)
    path, level, text = only(app.messages(), "runtime-mismatch")
    assert (path, level) == ("/C/Fn", "error")
    assert "layer for312 is built for python3.12, the function runs python3.13" in text


def test_architecture_mismatch_declared(tmp_path, kit_cache):
    app = Checked(tmp_path)
    app.function("Fn", [app.layer("armlayer", {"python/m.py": ""}, architecture=ARM)], architecture=X86,
                 stack=app.consumer)
    _, level, text = only(app.messages(), "architecture-mismatch")
    assert level == "error"
    assert "layer armlayer is built for arm64, the function is x86_64" in text


def test_a_layer_shadowing_another_layers_module(tmp_path, kit_cache):
    app = Checked(tmp_path)
    first = app.layer("first", {"python/util.py": "A = 1\n"})
    second = app.layer("second", {"python/util.py": "A = 2\n"})
    app.function("Fn", [first, second])
    path, level, text = only(app.messages(), "shadowed-module")
    assert (path, level) == ("/S/Fn", "warning")
    assert "layers first and second both ship 'util'" in text


def test_layerkit_check_refuses_an_asset_that_names_or_links_to_files_outside_itself(tmp_path, kit_cache):
    hostile_zip = tmp_path / "hostile.zip"
    with zipfile.ZipFile(hostile_zip, "w") as archive:
        archive.writestr("python/mod.py", "")
        archive.writestr(zipfile.ZipInfo("python/../../etc/cron.d/job"), "* * * * * root true\n")
    linked = write(tmp_path / "linked", {"python/mod.py": ""})
    (linked / "python" / "hostname").symlink_to("/etc/hostname")
    leaking = write(tmp_path / "leaking", {"python/mod.py": ""})
    (leaking / "python" / "environ").symlink_to("/proc/self/environ")
    code = write(tmp_path / "code", {"index.py": "def handler(e, c):\n    return 1\n"})
    cdk_app = App(outdir=str(tmp_path / "cdk.out"), context=app_context())
    stack = Stack(cdk_app, "S")
    layers = [lambda_.LayerVersion(stack, "Zip", code=lambda_.Code.from_asset(str(hostile_zip))),
              lambda_.LayerVersion(stack, "Folder", code=lambda_.Code.from_asset(str(linked))),
              lambda_.LayerVersion(stack, "Leaking", code=lambda_.Code.from_asset(str(leaking)))]
    lambda_.Function(stack, "Fn", runtime=lambda_.Runtime.PYTHON_3_12, handler="index.handler",
                     code=lambda_.Code.from_asset(str(code)), layers=layers)
    layerkit.check(cdk_app)
    found = {(path, level, rule) for path, level, text in synth_messages(cdk_app)
             for rule in ("unsafe-path", "unsafe-link", "link-outside") if f"[layerkit:{rule}]" in text}
    assert found == {("/S/Zip", "error", "unsafe-path"), ("/S/Leaking", "error", "unsafe-link"),
                     ("/S/Folder", "warning", "link-outside")}
