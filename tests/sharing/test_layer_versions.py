"""The versions a layer publishes (layerkit.sharing.layer_versions): two layers never publish to one parameter."""

from __future__ import annotations

from aws_cdk import App

from tests.conftest import LAYERS, app_context
from tests.helpers import assert_told, told


def test_two_layers_that_would_publish_to_one_parameter_are_refused(tmp_path, kit_cache):
    from aws_cdk import Stack
    from aws_cdk import aws_lambda as lambda_

    from layerkit import SharedPythonLayer

    stack = Stack(App(context=app_context()), "owner")
    options = {"entry": LAYERS / "another_layer", "runtime": lambda_.Runtime.PYTHON_3_12}
    SharedPythonLayer(stack, "X86", architecture=lambda_.Architecture.X86_64, **options)
    arm = SharedPythonLayer(stack, "Arm", architecture=lambda_.Architecture.ARM_64, **options)
    assert_told(stack, r"owner/Arm: owner/X86 already publishes its layer version in SSM parameter "
                       r"/owner/layers/another_layer/arn .*give one of them parameter_name=", on="owner/Arm")
    assert arm.broken
    SharedPythonLayer(stack, "Arm64", architecture=lambda_.Architecture.ARM_64,
                      parameter_name="/owner/layers/another_layer-arm64/arn", **options)
    assert len(told(stack)) == 1
