"""layerkit.check(app): every layer mistake caught at synth, on the construct at fault, with the fix."""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from functools import cached_property
from pathlib import Path

import pytest
from aws_cdk import App, Stack
from aws_cdk import aws_lambda as lambda_

import layerkit
from layerkit import PythonFunction, SharedPythonLayer
from layerkit.assemble.local_build import build_layer
from layerkit.core.errors import BuildError, LayerSourceError
from layerkit.core.targets import Target
from tests.conftest import app_context, synth_messages

PY312, PY313 = lambda_.Runtime.PYTHON_3_12, lambda_.Runtime.PYTHON_3_13
X86, ARM = lambda_.Architecture.X86_64, lambda_.Architecture.ARM_64
SIX_WHEEL_SHA256 = "4721f391ed90541fddacab5acf947aa0d3dc7d27b2e1e8eda2be8970586c3274"  # six-1.17.0-py2.py3


def tree(root: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    return root


class Checked:
    """A small app with layerkit.check applied; ``messages`` are the synthesized annotations."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp = tmp_path
        self.app = App(outdir=str(tmp_path / "cdk.out"), context=app_context())
        self.stack = Stack(self.app, "S")
        self.code = tree(tmp_path / "code", {"index.py": "def handler(e, c):\n    return 1\n"})

    @cached_property
    def consumer(self) -> Stack:
        """A second stack that uses S's layers through SSM, where the CDK cannot see them."""
        return Stack(self.app, "C")

    def layer(self, name: str, files: dict[str, str], **options) -> SharedPythonLayer:
        options.setdefault("runtime", PY312)
        return SharedPythonLayer(self.stack, name, entry=tree(self.tmp / name, files), **options)

    def function(self, name: str, layers: list, runtime=PY312, architecture=X86, stack=None) -> lambda_.Function:
        stack = stack or self.stack
        versions = [x.for_stack(stack) if isinstance(x, SharedPythonLayer) else x for x in layers]
        return lambda_.Function(stack, name, runtime=runtime, architecture=architecture,
                                handler="index.handler", code=lambda_.Code.from_asset(str(self.code)),
                                layers=versions)

    def messages(self, level: str | None = None) -> list[tuple[str, str, str]]:
        layerkit.check(self.app)
        found = [m for m in synth_messages(self.app) if "[layerkit:" in m[2]]
        return [m for m in found if level is None or m[1] == level]


def only(messages, rule):
    matching = [m for m in messages if f"[layerkit:{rule}]" in m[2]]
    assert len(matching) == 1, messages
    return matching[0]


def test_layer_without_python_folder(tmp_path, kit_cache):
    app = Checked(tmp_path)
    flat = tree(tmp_path / "flat", {"helpers.py": "X = 1\n"})
    layer = lambda_.LayerVersion(app.stack, "Flat", code=lambda_.Code.from_asset(str(flat)))
    app.function("Fn", [layer])
    path, level, text = only(app.messages(), "no-python-folder")
    assert (path, level) == ("/S/Flat", "error")
    assert "has no python/ folder (found helpers.py): Lambda only puts /opt/python on sys.path" in text
    assert "move the modules into python/ at the root of the layer" in text


@pytest.mark.parametrize("nested", ["python/python/mod.py", "python/pkg/python/mod.py"])
def test_module_one_level_too_deep(tmp_path, kit_cache, nested):
    app = Checked(tmp_path)
    prebuilt = tree(tmp_path / "deep", {nested: "X = 1\n"})  # zipped by hand, not by the kit
    app.function("Fn", [lambda_.LayerVersion(app.stack, "Deep", code=lambda_.Code.from_asset(str(prebuilt)))])
    path, level, text = only(app.messages(), "module-too-deep")
    assert (path, level) == ("/S/Deep", "error")
    assert "nests its modules one level too deep" in text
    assert "move their content up into python/" in text
    # The kit's own build applies the same rule, before anything is cached.
    with pytest.raises(LayerSourceError, match=r"layer deep nests its modules one level too deep"):
        app.layer("deep", {nested: "X = 1\n"})


def test_package_without_init(tmp_path, kit_cache):
    app = Checked(tmp_path)
    app.function("Fn", [app.layer("pkgs", {"python/tools/a.py": "", "python/ok/__init__.py": "",
                                           "python/ok/b.py": ""})])
    path, level, text = only(app.messages(), "missing-init")
    assert (path, level) == ("/S/pkgs", "warning")
    assert "python/tools/ holds modules but no __init__.py" in text
    assert "add an empty python/tools/__init__.py" in text


def test_more_than_five_layers(tmp_path, kit_cache):
    app = Checked(tmp_path)
    layers = [app.layer(f"l{i}", {f"python/m{i}.py": ""}) for i in range(6)]
    function = app.function("Fn", layers[:5])  # the L2 construct itself refuses a sixth...
    # ...but the escape hatch does not, and CloudFormation only says no at deploy time.
    function.node.default_child.layers = [layer.layer_version.layer_version_arn for layer in layers]
    path, level, text = only(app.messages(), "too-many-layers")
    assert (path, level) == ("/S/Fn", "error")
    assert "the function has 6 layers; Lambda allows 5" in text


@pytest.fixture(scope="module")
def big_zip(tmp_path_factory) -> Path:
    """A layer of 210 MB unzipped (zeros compress to almost nothing): 84% of Lambda's limit."""
    path = tmp_path_factory.mktemp("big") / "big.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as archive:
        chunk = bytes(105 * 1024 * 1024)
        archive.writestr("python/data/a.bin", chunk)
        archive.writestr("python/data/b.bin", chunk)
    return path


def test_near_the_size_limit_warns_and_over_it_fails(tmp_path, kit_cache, big_zip):
    app = Checked(tmp_path)
    big = lambda_.LayerVersion(app.stack, "Big", code=lambda_.Code.from_asset(str(big_zip)))
    twin = lambda_.LayerVersion(app.stack, "Twin", code=lambda_.Code.from_asset(str(big_zip)))
    app.function("Near", [big])
    app.function("Over", [big, twin])
    messages = app.messages()
    assert only(messages, "nearly-too-large")[:2] == ("/S/Near", "warning")
    assert "over 80% of Lambda's 250 MB limit" in only(messages, "nearly-too-large")[2]
    path, level, text = only(messages, "too-large")
    assert (path, level) == ("/S/Over", "error")
    assert "code plus layers is 420 MB unzipped; Lambda allows 250 MB" in text


def test_a_zip_over_50_mb_is_a_note_that_s3_upload_is_fine(tmp_path, kit_cache):
    path = tmp_path / "stored.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as archive:
        archive.writestr("python/data.bin", bytes(51 * 1024 * 1024))
    app = Checked(tmp_path)
    app.function("Fn", [lambda_.LayerVersion(app.stack, "Large", code=lambda_.Code.from_asset(str(path)))])
    _, level, text = only(app.messages(), "large-zip")
    assert level == "info"
    assert "over Lambda's 50 MB direct-upload limit: the CDK uploads it through S3, which is fine" in text


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


def test_x86_native_code_on_an_arm64_function(tmp_path, kit_cache):
    elf_x86_64 = b"\x7fELF\x02\x01\x01" + bytes(9) + b"\x03\x00" + (62).to_bytes(2, "little") + bytes(44)
    path = tmp_path / "native.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("python/fast.cpython-312-x86_64-linux-gnu.so", elf_x86_64)
    app = Checked(tmp_path)
    native = lambda_.LayerVersion(app.stack, "Native", code=lambda_.Code.from_asset(str(path)))
    app.function("Fn", [native], architecture=ARM)
    path, level, text = only(app.messages(), "native-code-mismatch")
    assert (path, level) == ("/S/Fn", "error")
    assert ("python/fast.cpython-312-x86_64-linux-gnu.so is built for CPython 3.12 on x86_64 Linux, and it runs on "
            "python3.12 on aarch64 Linux, where it cannot load") in text


def test_a_layer_shadowing_another_layers_module(tmp_path, kit_cache):
    app = Checked(tmp_path)
    first = app.layer("first", {"python/util.py": "A = 1\n"})
    second = app.layer("second", {"python/util.py": "A = 2\n"})
    app.function("Fn", [first, second])
    path, level, text = only(app.messages(), "shadowed-module")
    assert (path, level) == ("/S/Fn", "warning")
    assert "layers first and second both ship 'util'" in text


def test_unpinned_requirement_warns_on_the_layer(tmp_path, kit_cache):
    app = Checked(tmp_path)
    app.function("Fn", [app.layer("loose", {"python/m.py": "", "requirements.txt": "six\n"})])
    annotations = app.app.synth().get_stack_by_name("S").messages
    warnings = [m for m in annotations if "'six' is not pinned" in str(m.entry.data)]
    assert [(m.id, m.level.value.lower()) for m in warnings] == [("/S/loose", "warning")]


def test_hashed_requirements_are_verified(tmp_path):
    good = tree(tmp_path / "good", {"python/m.py": "",
                                    "requirements.txt": f"six==1.17.0 --hash=sha256:{SIX_WHEEL_SHA256}\n"})
    build = build_layer(good, Target("python3.12", "x86_64"), cache_dir=tmp_path / "cache")
    assert build.packages == ["six==1.17.0"]
    bad = tree(tmp_path / "bad", {"python/m.py": "", "requirements.txt": f"six==1.17.0 --hash=sha256:{'0' * 64}\n"})
    with pytest.raises(BuildError, match=r"layer bad: the file downloaded for six==1\.17\.0 does not match any of "
                                         r"its --hash; if the new file is trusted, regenerate the hashes"):
        build_layer(bad, Target("python3.12", "x86_64"), cache_dir=tmp_path / "cache")


@pytest.fixture(scope="module")
def guarded_example(tmp_path_factory, kit_cache):
    from app import build, guard

    app = App(outdir=str(tmp_path_factory.mktemp("cdk.out")), context=app_context())
    example = build(app)
    guard(app)
    return example, app.synth()


def test_the_example_app_passes_every_layerkit_check(guarded_example):
    _, assembly = guarded_example
    messages = [str(m.entry.data) for stack in assembly.stacks for m in stack.messages]
    assert [m for m in messages if "[layerkit:" in m] == []


def test_the_example_app_passes_cdk_nag_with_justified_acknowledgements(guarded_example):
    _, assembly = guarded_example
    report = json.loads((Path(assembly.directory) / "validation-report.json").read_text())
    (nag,) = report["pluginReports"]
    assert (nag["pluginName"], nag["conclusion"], nag["violations"]) == ("AwsSolutions", "success", [])
    for acknowledged in nag["suppressedViolations"]:
        assert acknowledged["reason"].strip(), acknowledged["ruleName"]
        assert "\n" not in acknowledged["reason"]


def test_cfn_lint_finds_no_error_in_any_template(guarded_example):
    _, assembly = guarded_example
    templates = [str(Path(assembly.directory) / stack.template_file) for stack in assembly.stacks]
    assert len(templates) == 3
    proc = subprocess.run([str(Path(sys.executable).parent / "cfn-lint"), "--format", "json", *templates],
                          capture_output=True, text=True, timeout=300)
    # cfn-lint's exit status is a bit field: 2 = errors found, and it exits 1 when it fails itself; warnings (4)
    # and notes (8) are allowed (the CDK's generated DependsOn draws W3005).
    assert proc.returncode & 0b11 == 0, (proc.returncode, proc.stderr[-2000:])
    findings = json.loads(proc.stdout)
    assert [f for f in findings if f["Level"] == "Error"] == []


def test_iam_grants_only_what_the_functions_use(guarded_example):
    _, assembly = guarded_example
    granted = {}
    for stack in assembly.stacks:
        resources = stack.template.get("Resources", {})
        roles = [r for r in resources.values() if r["Type"] == "AWS::IAM::Role"]
        assert all("ManagedPolicyArns" not in r["Properties"] for r in roles), "AWSLambdaBasicExecutionRole may " \
            "create any log group"
        statements = [s for r in resources.values() if r["Type"] == "AWS::IAM::Policy"
                      for s in r["Properties"]["PolicyDocument"]["Statement"]]
        if stack.stack_name == "lambda-layers-example":
            assert (roles, statements) == ([], [])  # the layers stack runs nothing
            continue
        (log_group,) = [lid for lid, r in resources.items() if r["Type"] == "AWS::Logs::LogGroup"]
        granted[stack.stack_name] = [(sorted(s["Action"]), s["Resource"]) for s in statements]
        assert granted[stack.stack_name] == [(["logs:CreateLogStream", "logs:PutLogEvents"],
                                             {"Fn::GetAtt": [log_group, "Arn"]})]
    assert sorted(granted) == ["lambda-layers-example-order-total", "lambda-layers-example-text-stats"]


def test_layer_order_is_the_order_given_with_python_function_and_sorted_with_a_plain_function(tmp_path, kit_cache):
    # The recommended flag @aws-cdk/aws-lambda:recognizeLayerVersion (cdk.json) makes the CDK sort a Function's
    # layers by construct path: "b" then "a" deploys as "a" then "b", and "a" no longer wins in /opt.
    app = Checked(tmp_path)
    b, a = app.layer("b", {"python/util.py": "WHO = 'b'\n"}), app.layer("a", {"python/util.py": "WHO = 'a'\n"})
    PythonFunction(app.stack, "Kept", entry=app.code, runtime=PY312, layers=[b, a])
    app.function("Sorted", [b, a])
    messages = app.messages()
    template = app.app.synth().get_stack_by_name("S").template
    layers = {logical_id.rstrip("0123456789ABCDEF"): r["Properties"]["Layers"]
              for logical_id, r in template["Resources"].items() if r["Type"] == "AWS::Lambda::Function"}
    refs = {name: [ref["Ref"][0] for ref in refs] for name, refs in layers.items()}
    assert refs == {"Kept": ["b", "a"], "Sorted": ["a", "b"]}
    kept, = [m for m in messages if m[0] == "/S/Kept"]
    assert "layers b and a both ship 'util': the later one (a) replaces the other's copy in /opt/python;" in kept[2]
    plain, = [m for m in messages if m[0] == "/S/Sorted"]
    assert "layers a and b both ship 'util': the later one (b) replaces" in plain[2]
    assert "as @aws-cdk/aws-lambda:recognizeLayerVersion makes the CDK sort them" in plain[2]
