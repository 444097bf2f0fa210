"""The example app's stacks, checked with aws_cdk.assertions on the synthesized templates."""

from __future__ import annotations

import zipfile

from aws_cdk.assertions import Template

from layerkit.assembly import Assembly


def templates(example) -> dict[str, Template]:
    stacks = [example.layers, *example.functions.values()]
    return {stack.stack_name: Template.from_stack(stack) for stack in stacks}


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
