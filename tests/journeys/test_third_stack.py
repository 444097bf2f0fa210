"""A third consumer stack still shares one layer version."""

from __future__ import annotations

from aws_cdk import App, Stack
from aws_cdk import aws_lambda as lambda_
from aws_cdk.assertions import Template

import layerkit
from app import build
from tests.conftest import app_context


def test_a_third_consumer_stack_still_shares_one_layer_version(tmp_path, kit_cache):
    app = App(outdir=str(tmp_path), context=app_context())
    example = build(app)
    shared: layerkit.SharedPythonLayer = example.layers.my_layer
    third = Stack(app, "third-consumer")
    lambda_.Function(third, "Reporter", runtime=lambda_.Runtime.PYTHON_3_12, handler="index.handler",
                     code=lambda_.Code.from_inline("import my_layer\ndef handler(e, c):\n    return 1\n"),
                     layers=[shared.for_stack(third)])
    assembly = app.synth()

    layer_versions = [
        resource for stack in assembly.stacks
        for resource in stack.template.get("Resources", {}).values()
        if resource["Type"] == "AWS::Lambda::LayerVersion"
    ]
    assert len(layer_versions) == 2  # my_layer and another_layer, once each
    template = Template.from_stack(third)
    template.resource_count_is("AWS::Lambda::LayerVersion", 0)
    (param,) = [p for p in template.to_json()["Parameters"].values() if "layers/my_layer" in p.get("Default", "")]
    assert param == {"Type": "AWS::SSM::Parameter::Value<String>",
                     "Default": "/lambda-layers-example/layers/my_layer/arn"}
    dependencies = [d.id for d in assembly.get_stack_by_name("third-consumer").dependencies]
    assert "lambda-layers-example" in dependencies
