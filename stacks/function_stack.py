"""A stack with one Python function (its own dependencies included) that uses layers owned by another stack."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from aws_cdk import Acknowledgment, Duration, RemovalPolicy, Stack, Validations
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from constructs import Construct

from layerkit import PythonFunction, SharedPythonLayer


class FunctionStack(Stack):
    """One function from ``code_dir`` (handler ``handler.handler``) with the given layers, in order.

    The function's own dependencies, if any, are declared in ``code_dir`` (e.g. ``requirements.txt``) and
    installed beside its code. A :class:`SharedPythonLayer` is referenced as its sharing mode says; any other
    layer version as is. ``events/`` (sample events) never deploys.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        code_dir: Path,
        layers: Sequence[SharedPythonLayer | lambda_.ILayerVersion],
        runtime: lambda_.Runtime,
        architecture: lambda_.Architecture,
        description: str,
        **kwargs: Any,
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)
        log_group = logs.LogGroup(
            self, "Logs", retention=logs.RetentionDays.ONE_MONTH, removal_policy=RemovalPolicy.DESTROY
        )
        # The function writes its logs and does nothing else on AWS: its role may do exactly that. (The CDK's
        # default role carries AWSLambdaBasicExecutionRole, which may create any log group in the account.)
        role = iam.Role(self, "Role", assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
                        description=f"Runs {code_dir.name}: writes to its own log group only")
        log_group.grant_write(role)
        self.function = PythonFunction(
            self,
            "Function",
            entry=code_dir,
            index="handler.py",
            handler="handler",
            description=description,
            runtime=runtime,
            architecture=architecture,
            layers=layers,
            memory_size=256,
            timeout=Duration.seconds(10),
            log_group=log_group,
            role=role,
        )
        Validations.of(self.function).acknowledge(Acknowledgment(
            id="AwsSolutions::AwsSolutions-L1",
            reason="The example pins python3.12, the runtime its layers are built for; layerkit builds 3.11-3.14.",
        ))
