"""AWS SAM's builder (aws-lambda-builders, python_pip workflow, no container), as `sam build` runs it for a layer.

Run by the bench's own environment (.venv-bench): python sam_builder.py SOURCE ARTIFACTS SCRATCH MANIFEST RUNTIME ARCH
"""

import sys
from pathlib import Path

from aws_lambda_builders.builder import LambdaBuilder

source, artifacts, scratch, manifest, runtime, architecture = sys.argv[1:7]
LambdaBuilder(language="python", dependency_manager="pip", application_framework=None).build(
    source, artifacts, scratch, manifest, runtime=runtime, architecture=architecture,
    executable_search_paths=[str(Path(sys.executable).parent)],
)
