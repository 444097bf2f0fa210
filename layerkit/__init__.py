"""layerkit: AWS Lambda layers done right with the AWS CDK in Python.

The CDK constructs are imported lazily, so that ``layerkit build`` and ``layerkit invoke`` start without
loading the CDK (and its Node.js runtime).
"""

from __future__ import annotations

import importlib
import os
import sys
from typing import TYPE_CHECKING, Any

from layerkit.core.errors import one_line_uncaught
from layerkit.core.kit_version import __version__ as __version__

# The one place the jsii runtime's Node.js end-of-life banner is quieted: Node 20 is what these machines
# have, and the banner buries every `cdk synth` and test run. It only takes effect when this module is
# imported before aws_cdk (app.py and the tests do so); set the variable to "" to see the banner again.
os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")
# The CDK records a Node.js stack trace with every annotation, and the CDK CLI prints its first frame above the
# message. In a Python app that frame is always the jsii runtime's (".../lib/program.js:1:5591"), never the
# app's code: a stray line above every warning. `cdk synth --debug` (CDK_DEBUG) keeps them.
if not os.environ.get("CDK_DEBUG"):
    os.environ.setdefault("CDK_DISABLE_STACK_TRACE", "1")
# A mistake that ends a CDK app is one line, as the CDK CLI tells a construct's error (core/errors.py); a hook the
# app or its tools set first is left as it is.
if sys.excepthook is sys.__excepthook__:
    sys.excepthook = one_line_uncaught

if TYPE_CHECKING:
    from layerkit.assemble.build_result import Build, LayerBuild
    from layerkit.assemble.local_build import build_function, build_layer
    from layerkit.checks.app import check
    from layerkit.constructs.alpha import BundlingOptions, ICommandHooks, PythonFunction, PythonLayerVersion
    from layerkit.constructs.external import ExternalPythonLayer
    from layerkit.constructs.layer import SharedPythonLayer
    from layerkit.core.errors import LayerkitError
    from layerkit.core.targets import Target
    from layerkit.installed.slim import Slim
    from layerkit.sharing.publication import Sharing

__all__ = ["Build", "BundlingOptions", "ExternalPythonLayer", "ICommandHooks", "LayerBuild", "LayerkitError",
           "PythonFunction", "PythonLayerVersion", "SharedPythonLayer", "Sharing", "Slim", "Target", "build_function",
           "build_layer", "check"]

_LAZY = {
    "Build": "layerkit.assemble.build_result",
    "LayerBuild": "layerkit.assemble.build_result",
    "LayerkitError": "layerkit.core.errors",
    "PythonFunction": "layerkit.constructs.alpha",
    "PythonLayerVersion": "layerkit.constructs.alpha",
    "BundlingOptions": "layerkit.constructs.alpha",
    "ICommandHooks": "layerkit.constructs.alpha",
    "ExternalPythonLayer": "layerkit.constructs.external",
    "build_function": "layerkit.assemble.local_build",
    "build_layer": "layerkit.assemble.local_build",
    "SharedPythonLayer": "layerkit.constructs.layer",
    "Sharing": "layerkit.sharing.publication",
    "Slim": "layerkit.installed.slim",
    "Target": "layerkit.core.targets",
    "check": "layerkit.checks.app",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'layerkit' has no attribute {name!r}")
