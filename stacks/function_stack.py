"""A stack with one Python function that uses layers owned by another stack."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from aws_cdk import Duration, RemovalPolicy, Stack
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from constructs import Construct

from layerkit import SharedPythonLayer

#: What lives beside a function's code but is not part of it.
CODE_EXCLUDES = ["events", "tests", "__pycache__", "*.pyc"]


class FunctionStack(Stack):
    """One function from ``code_dir`` (handler ``handler.handler``) with the given shared layers, in order."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        code_dir: Path,
        layers: Sequence[SharedPythonLayer],
        runtime: lambda_.Runtime,
        architecture: lambda_.Architecture,
        description: str,
        **kwargs: Any,
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)
        log_group = logs.LogGroup(
            self, "Logs", retention=logs.RetentionDays.ONE_MONTH, removal_policy=RemovalPolicy.DESTROY
        )
        self.function = lambda_.Function(
            self,
            "Function",
            description=description,
            runtime=runtime,
            architecture=architecture,
            handler="handler.handler",
            code=lambda_.Code.from_asset(str(code_dir), exclude=CODE_EXCLUDES),
            layers=[layer.for_stack(self) for layer in layers],
            memory_size=256,
            timeout=Duration.seconds(10),
            log_group=log_group,
        )
