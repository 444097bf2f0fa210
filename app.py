#!/usr/bin/env python3
"""The example app: one stack owns two layers, two stacks each hold a function that uses both."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import layerkit  # first: it quiets the jsii Node.js banner before aws_cdk starts Node

# isort: split
from aws_cdk import App, Validations
from aws_cdk import aws_lambda as lambda_
from cdk_nag import AwsSolutionsChecks

from stacks.function_stack import FunctionStack
from stacks.layers_stack import LayersStack

ROOT = Path(__file__).resolve().parent
RUNTIME = lambda_.Runtime.PYTHON_3_12
ARCHITECTURE = lambda_.Architecture.X86_64
LAYERS_STACK = "lambda-layers-example"
FUNCTIONS = {
    # stack name: (function folder, description)
    "lambda-layers-example-order-total": ("order_total", "Prices an order (pydantic + Decimal from layers)"),
    "lambda-layers-example-text-stats": ("text_stats", "Counts words in a text (pydantic + helpers from layers)"),
}


@dataclass
class ExampleApp:
    app: App
    layers: LayersStack
    functions: dict[str, FunctionStack]


def build(app: App, layers_dir: Path = ROOT / "layers", lambdas_dir: Path = ROOT / "lambdas") -> ExampleApp:
    """Wire the stacks into ``app``; the tests call this on apps of their own (and folders of their own)."""
    layers = LayersStack(app, LAYERS_STACK, layers_dir=layers_dir, docker_image_dir=ROOT / "docker",
                         runtime=RUNTIME, architecture=ARCHITECTURE)
    functions = {
        stack_name: FunctionStack(
            app,
            stack_name,
            code_dir=lambdas_dir / folder,
            layers=layers.layers,
            runtime=RUNTIME,
            architecture=ARCHITECTURE,
            description=description,
        )
        for stack_name, (folder, description) in FUNCTIONS.items()
    }
    return ExampleApp(app, layers, functions)


def guard(app: App) -> None:
    """Fail the synth on a layer mistake (layerkit's checks) or an AWS Solutions finding (cdk-nag)."""
    layerkit.check(app)
    Validations.of(app).add_plugins(AwsSolutionsChecks(app))


def main() -> int:
    # A mistake in a layer or function folder is its construct's error: cdk synth prints one line for each.
    example = build(App())
    guard(example.app)
    example.app.synth()
    return 0


if __name__ == "__main__":
    sys.exit(main())
