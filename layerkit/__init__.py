"""layerkit: AWS Lambda layers done right with the AWS CDK in Python.

The CDK constructs are imported lazily, so that ``layerkit build`` and ``layerkit invoke`` start without
loading the CDK (and its Node.js runtime).
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

__version__ = "0.4.0"

# The one place the jsii runtime's Node.js end-of-life banner is quieted: Node 20 is what these machines
# have, and the banner buries every `cdk synth` and test run. It only takes effect when this module is
# imported before aws_cdk (app.py and the tests do so); set the variable to "" to see the banner again.
os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")
# The CDK records a Node.js stack trace with every annotation, and the CDK CLI prints its first frame above the
# message. In a Python app that frame is always the jsii runtime's (".../lib/program.js:1:5591"), never the
# app's code: a stray line above every warning. `cdk synth --debug` (CDK_DEBUG) keeps them.
if not os.environ.get("CDK_DEBUG"):
    os.environ.setdefault("CDK_DISABLE_STACK_TRACE", "1")

if TYPE_CHECKING:
    from layerkit.alpha import BundlingOptions, ICommandHooks, PythonFunction, PythonLayerVersion
    from layerkit.build import Build, LayerBuild, build_function, build_layer
    from layerkit.checks import check
    from layerkit.errors import LayerkitError
    from layerkit.external import ExternalPythonLayer
    from layerkit.layer import SharedPythonLayer
    from layerkit.share import Sharing
    from layerkit.slim import Slim
    from layerkit.targets import Target

__all__ = ["Build", "BundlingOptions", "ExternalPythonLayer", "ICommandHooks", "LayerBuild", "LayerkitError",
           "PythonFunction", "PythonLayerVersion", "SharedPythonLayer", "Sharing", "Slim", "Target", "build_function",
           "build_layer", "check"]

_LAZY = {
    "Build": "layerkit.build",
    "LayerBuild": "layerkit.build",
    "LayerkitError": "layerkit.errors",
    "PythonFunction": "layerkit.alpha",
    "PythonLayerVersion": "layerkit.alpha",
    "BundlingOptions": "layerkit.alpha",
    "ICommandHooks": "layerkit.alpha",
    "ExternalPythonLayer": "layerkit.external",
    "build_function": "layerkit.build",
    "build_layer": "layerkit.build",
    "SharedPythonLayer": "layerkit.layer",
    "Sharing": "layerkit.share",
    "Slim": "layerkit.slim",
    "Target": "layerkit.targets",
    "check": "layerkit.checks",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'layerkit' has no attribute {name!r}")
