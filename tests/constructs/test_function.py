"""PythonFunction (layerkit.constructs.function): its code and dependencies at the zip's root, what its layers already
ship left out, its layers in the order given, its mistakes one line at synth."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from aws_cdk import App, Stack

import layerkit
from layerkit import PythonFunction, SharedPythonLayer
from layerkit.assembly import Assembly
from layerkit.invoke import invoke_function
from tests.conftest import ROOT, app_context, make_wheel, write
from tests.helpers import ARCHITECTURES, PY312, Checked, assert_told, messages
from tests.lock_projects import LOCKED_ORJSON

HANDLER = """\
import json, orjson, six, kit_shared


def handler(event, context):
    return {"json": orjson.dumps(event).decode(), "six": six.__version__, "six_from": six.__file__,
            "shared": kit_shared.VERSION, "orjson_from": orjson.__file__}
"""


@pytest.fixture(scope="module")
def app(locked, kit_cache, tmp_path_factory):
    """A layer (six, kit-shared 1.0) in one stack; in another, functions with orjson of their own (compiled
    code) for both architectures, and one that asks for kit-shared 2.0 while its layer ships 1.0."""
    make_wheel(locked.wheels, "kit-shared", {"kit_shared.py": "VERSION = '1.0'\n"}, version="1.0")
    make_wheel(locked.wheels, "kit-shared", {"kit_shared.py": "VERSION = '2.0'\n"}, version="2.0")
    src = tmp_path_factory.mktemp("src")
    index = f"--index-url {locked.index.url()}\n"
    write(src / "shared", {"python/helpers.py": "", "requirements.txt": f"{index}six==1.17.0\nkit-shared==1.0\n"})
    write(src / "fn", {"index.py": HANDLER, "events/sample.json": "{}", "tests/test_index.py": "",
                       "requirements.txt": f"{index}orjson=={LOCKED_ORJSON}\nsix==1.17.0\n"})
    write(src / "clash", {"app.py": "import kit_shared\n\ndef main(event, context):\n    return kit_shared.VERSION\n",
                          "requirements.txt": f"{index}kit-shared==2.0\n"})
    cdk_app = App(outdir=str(tmp_path_factory.mktemp("cdk.out")), context=app_context())
    owners, users = Stack(cdk_app, "layers"), Stack(cdk_app, "functions")
    layers = {arch: SharedPythonLayer(owners, f"Shared{arch}", entry=src / "shared", runtime=PY312,
                                      architecture=architecture, parameter_name=f"/tests/layers/shared-{arch}/arn")
              for arch, architecture in ARCHITECTURES.items()}
    functions = {arch: PythonFunction(users, f"Fn{arch}", entry=src / "fn", runtime=PY312,
                                      architecture=architecture, layers=[layers[arch]])
                 for arch, architecture in ARCHITECTURES.items()}
    clash = PythonFunction(users, "Clash", entry=src / "clash", index="app.py", handler="main", runtime=PY312,
                           layers=[layers["x86_64"]])
    layerkit.check(cdk_app)
    return cdk_app, functions, clash, cdk_app.synth()


BAD = {
    "no-index-file": ({"handler.py": "def handler(e, c):\n    return 1\n"}, {},
                      "index.py does not exist; create it, or pass index= the file"),
    "no-such-handler": ({"index.py": "def main(e, c):\n    return 1\n"}, {},
                        "index.py defines no 'handler'; add 'def handler(event, context)' there, or pass handler="),
    "not-a-module": ({"index.py": ""}, {"index": "index.txt"}, "index 'index.txt' is not a .py file"),
    "syntax-error": ({"index.py": "def handler(event, context:\n"}, {}, "index.py:1: does not parse"),
    # lambda_.Function's module.function: the two keywords it means.
    "dotted-handler": ({"app/main.py": "def run(e, c):\n    return 1\n"}, {"handler": "app.main.run"},
                       "here they are two keywords: index='app/main.py', handler='run'"),
    "no-module": ({"README.md": "the code is elsewhere\n"}, {}, "holds no Python module to deploy"),
}


@pytest.mark.parametrize("arch", ["x86_64", "arm64"])
def test_the_function_code_holds_its_dependencies_at_the_root_built_for_its_architecture(app, arch):
    _, functions, _, assembly = app
    function = Assembly.load(assembly.directory).function(f"functions/Fn{arch}")
    assert (function.handler, function.architecture) == ("index.handler", arch)
    with zipfile.ZipFile(function.code) as archive:
        names = [n for n in archive.namelist() if not n.endswith("/")]
        (extension,) = [n for n in names if n.endswith(".so")]
        assert extension.startswith("orjson/")
        assert ".cpython-312-" in extension
        elf = archive.read(extension)
    assert {"index.py", "__pycache__/index.cpython-312.pyc", f"orjson-{LOCKED_ORJSON}.dist-info/METADATA"} <= set(names)
    assert elf[:4] == b"\x7fELF"
    assert int.from_bytes(elf[18:20], "little") == {"x86_64": 62, "arm64": 183}[arch]
    # Never deployed: sample events, tests, the dependency file; six is in the function's layer at the same
    # version, so it is not installed twice.
    assert not [n for n in names if n.split("/")[0] in ("events", "tests", "requirements.txt", "six.py")]
    assert functions[arch].build.provided_by_layers == ["six==1.17.0"]
    assert functions[arch].build.packages == [f"orjson=={LOCKED_ORJSON}"]


def test_the_function_answers_locally_with_its_own_dependency_and_its_layers(app):
    _, _, _, assembly = app
    function = Assembly.load(assembly.directory).function("functions/Fnx86_64")
    (result,) = invoke_function(function, [b'{"order": 7}'], backend="sandbox")
    assert result.ok, result.payload
    assert result.payload["json"] == '{"order":7}'
    assert result.payload["orjson_from"].startswith("/var/task/orjson/")  # the function's own dependency
    assert (result.payload["six"], result.payload["six_from"]) == ("1.17.0", "/opt/python/six.py")  # the layer's
    assert result.payload["shared"] == "1.0"


def test_a_dependency_at_another_version_than_the_layers_is_a_synth_finding(app):
    _, _, _, assembly = app
    found = messages(assembly, "functions")
    assert [(path, level) for path, level, text in found if "[layerkit:version-clash]" in text] == [
        ("/functions/Clash", "warning")]
    (text,) = [text for _, _, text in found if "[layerkit:version-clash]" in text]
    assert ("the function ships kit-shared 2.0 (its own dependencies, /var/task) and layer shared ships "
            "kit-shared 1.0 (/opt/python): /var/task comes first on Lambda") in text
    assert [m for m in found if "version-clash" not in m[2]] == []


def test_describe_counts_the_functions_dependencies(app):

    _, _, _, assembly = app
    proc = subprocess.run([sys.executable, "-m", "layerkit.cli", "describe", "--assembly", assembly.directory,
                           "--json"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    (function,) = [f for f in json.loads(proc.stdout)["functions"] if f["id"] == "functions/Fnx86_64"]
    with zipfile.ZipFile(Assembly.load(assembly.directory).function("functions/Fnx86_64").code) as archive:
        assert function["code_unzipped_bytes"] == sum(i.file_size for i in archive.infolist())
    assert function["code_unzipped_bytes"] > 200_000  # orjson's extension alone
    assert function["total_unzipped_bytes"] > function["code_unzipped_bytes"]


def test_a_changed_function_dependency_is_new_code_not_a_new_layer_version(kit_cache, tmp_path):
    from app import build
    from layerkit.checks.upgrade import check_upgrade

    lambdas = Path(shutil.copytree(ROOT / "lambdas", tmp_path / "lambdas"))
    assemblies = []
    for name, requirements in [("before", None), ("after", "python-dateutil==2.9.0\nsix==1.17.0\n")]:
        if requirements:
            (lambdas / "order_total" / "requirements.txt").write_text(requirements)
        cdk_app = App(outdir=str(tmp_path / name), context=app_context())
        build(cdk_app, lambdas_dir=lambdas)
        cdk_app.synth()
        assemblies.append(Assembly.load(tmp_path / name))
    report = check_upgrade(*assemblies)
    assert report.layers == []
    assert report.locks == []
    assert [change.function for change in report.functions] == ["lambda-layers-example-order-total/Function"]


@pytest.mark.parametrize("case", BAD)
def test_a_function_folder_mistake_stops_the_synth_naming_the_construct_the_file_and_the_fix(case, tmp_path):
    files, options, expected = BAD[case]
    entry = write(tmp_path / "fn", files)
    stack = Stack(App(context=app_context()), "S")
    function = PythonFunction(stack, "Fn", entry=entry, runtime=PY312, **options)
    message = assert_told(stack, "", on="S/Fn")
    assert message.startswith("function S/Fn: ")
    assert expected in message
    assert function.broken


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
