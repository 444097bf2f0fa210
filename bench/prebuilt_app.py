"""The example app without the kit, for `make bench`: the same stacks with its layers given as prebuilt folders
(plain ``lambda.LayerVersion`` + ``Code.from_asset``), as a user who zips layers by hand would write it."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import layerkit  # noqa: F401  (quiets the jsii Node.js banner; nothing else of the kit is used)

# isort: split
from aws_cdk import App, Stack, Validations
from aws_cdk import aws_lambda as lambda_
from cdk_nag import AwsSolutionsChecks

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from app import ARCHITECTURE, FUNCTIONS, LAYERS_STACK, RUNTIME  # noqa: E402
from stacks.function_stack import FunctionStack  # noqa: E402

PREBUILT = Path(os.environ["PREBUILT_LAYERS"])  # folders that hold python/, extracted from the kit's zips

app = App()
owner = Stack(app, LAYERS_STACK)
layers = [
    lambda_.LayerVersion(owner, name, code=lambda_.Code.from_asset(str(PREBUILT / name)),
                         compatible_runtimes=[RUNTIME], compatible_architectures=[ARCHITECTURE])
    for name in ("my_layer", "another_layer")
]
for stack_name, (folder, description) in FUNCTIONS.items():
    FunctionStack(app, stack_name, code_dir=ROOT / "lambdas" / folder, layers=layers, runtime=RUNTIME,
                  architecture=ARCHITECTURE, description=description)
Validations.of(app).add_plugins(AwsSolutionsChecks(app))
app.synth()
