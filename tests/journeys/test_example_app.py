"""The example app as it deploys: its stacks, layers and functions, the checks it passes, and its functions answering
with their layers."""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from aws_cdk import App, Stack
from aws_cdk import aws_lambda as lambda_
from aws_cdk.assertions import Template

from layerkit.assembly import Assembly
from layerkit.invoke import invoke_function
from tests.conftest import app_context
from tests.invoke.apps import cli_layers, fn_id


def templates(example) -> dict[str, Template]:
    stacks = [example.layers, *example.functions.values()]
    return {stack.stack_name: Template.from_stack(stack) for stack in stacks}


@pytest.fixture(scope="module")
def guarded_example(tmp_path_factory, kit_cache):
    from app import build, guard

    app = App(outdir=str(tmp_path_factory.mktemp("cdk.out")), context=app_context())
    example = build(app)
    guard(app)
    return example, app.synth()


def test_each_layer_is_one_layer_version_in_the_layers_stack(example):
    by_stack = templates(example)
    logical_ids = {
        example.layers.get_logical_id(layer.layer_version.node.default_child) for layer in example.layers.layers
    }
    assert by_stack["lambda-layers-example"].find_resources("AWS::Lambda::LayerVersion").keys() == logical_ids
    for name, template in by_stack.items():
        if name != "lambda-layers-example":
            template.resource_count_is("AWS::Lambda::LayerVersion", 0)


def test_layers_declare_the_runtime_and_architecture_they_were_built_for(example):
    template = templates(example)["lambda-layers-example"]
    template.all_resources_properties("AWS::Lambda::LayerVersion", {
        "CompatibleRuntimes": ["python3.12"],
        "CompatibleArchitectures": ["x86_64"],
    })
    # Retained: a function still on an old version keeps working during a rollout or a rollback.
    for resource in template.find_resources("AWS::Lambda::LayerVersion").values():
        assert resource["DeletionPolicy"] == "Retain"


def test_both_functions_use_both_layers_in_order_with_matching_runtime_and_architecture(example):
    for name, template in templates(example).items():
        if name == "lambda-layers-example":
            continue
        functions = template.find_resources("AWS::Lambda::Function")
        assert len(functions) == 1, name
        (function,) = functions.values()
        props = function["Properties"]
        assert props["Runtime"] == "python3.12"
        assert props["Architectures"] == ["x86_64"]
        parameters = template.to_json()["Parameters"]
        referenced = [parameters[ref["Ref"]]["Default"] for ref in props["Layers"]]
        assert referenced == [
            "/lambda-layers-example/layers/my_layer/arn",
            "/lambda-layers-example/layers/another_layer/arn",
        ]


def test_function_code_is_the_function_folder_with_its_own_dependencies_and_without_its_sample_events(example):
    function = Assembly.load(example.app.outdir).function("lambda-layers-example-order-total/Function")
    with zipfile.ZipFile(function.code) as archive:
        names = [n for n in archive.namelist() if not n.endswith("/")]
    tops = {name.split("/")[0] for name in names}
    # dateutil is order_total's own dependency (lambdas/order_total/requirements.txt), in no layer: at the root.
    assert {"handler.py", "dateutil", "six.py", "python_dateutil-2.9.0.post0.dist-info", "__pycache__"} <= tops
    assert "__pycache__/handler.cpython-312.pyc" in names
    assert not tops & {"events", "requirements.txt", "python", "pydantic"}, "sample events, the dependency file " \
        "or a layer's packages in the function's code"


def test_a_function_without_dependencies_ships_its_code_only(example):
    function = Assembly.load(example.app.outdir).function("lambda-layers-example-text-stats/Function")
    with zipfile.ZipFile(function.code) as archive:
        names = sorted(n for n in archive.namelist() if not n.endswith("/"))
    assert names == ["__pycache__/handler.cpython-312.pyc", "handler.py"]


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


def test_list_shows_every_function_with_its_layers_in_order(layers_app):
    result = cli_layers(layers_app, "--list")
    assert result.returncode == 0
    lines = {line.split("\t")[0]: line.split("\t")[-1] for line in result.stdout.splitlines()}
    assert lines[fn_id(layers_app, "reversed")] == "second, first, vendor"


def test_example_functions_return_their_results_with_layers_from_the_other_stack(example_functions):
    assembly, backend = example_functions
    order = assembly.function("lambda-layers-example-order-total/Function")
    assert [(u.layer.name, u.layer.stack, u.via) for u in order.layers] == [
        ("my_layer", "lambda-layers-example", "ssm"), ("another_layer", "lambda-layers-example", "ssm"),
    ]
    root = Path(__file__).resolve().parents[2]
    events = [(root / "lambdas/order_total/events/order.json").read_bytes()]
    (result,) = invoke_function(order, events, backend=backend)
    assert result.payload == {"ok": True, "order_id": "A-1001", "currency": "EUR", "lines": 2, "total": "102.30",
                              "placed_on": "Friday 27 November 2026"}

    stats = assembly.function("lambda-layers-example-text-stats/Function")
    (result,) = invoke_function(stats, [(root / "lambdas/text_stats/events/text.json").read_bytes()], backend=backend)
    assert result.payload == {"ok": True, "words": 14, "unique": 9,
                              "top": [{"word": "layer", "count": 3}, {"word": "the", "count": 3}]}


def test_the_example_assets_keep_the_s3_keys_they_had_before_the_kit_was_restructured(example):
    """The keys recorded before issue 26 moved every module (tests/journeys/example_asset_keys.json): the same
    inputs keep their asset hashes, so an app upgraded across the move deploys no new layer version or code."""
    recorded = json.loads((Path(__file__).with_name("example_asset_keys.json")).read_text())
    assembly = example.app.synth()
    keys = {}
    for construct in example.app.node.find_all():
        if isinstance(construct, lambda_.CfnFunction | lambda_.CfnLayerVersion):
            stack = Stack.of(construct)
            resource = assembly.get_stack_by_name(stack.stack_name).template["Resources"][
                stack.resolve(construct.logical_id)]
            code = resource["Properties"].get("Content") or resource["Properties"]["Code"]
            keys[construct.node.path.removesuffix("/Resource")] = code["S3Key"]
    assert keys == recorded
