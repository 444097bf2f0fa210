"""The environment variables Lambda's Python runtime defines, plus the function's own."""

from __future__ import annotations

import os

from layerkit.assembly import Function
from layerkit.core.errors import InvokeError

TASK_ROOT = "/var/task"
RUNTIME_DIR = "/var/runtime"
LANG_DIR = "/var/lang"


def function_name(function: Function) -> str:
    """What AWS_LAMBDA_FUNCTION_NAME would hold: CloudFormation names it ``<stack>-<logical id>-<suffix>``."""
    return f"{function.stack}-{function.logical_id}"[:64]


def lambda_environment(function: Function, runtime_api: str, overrides: dict[str, str]) -> dict[str, str]:
    """Reserved variables first, then the function's own, then ``--env`` overrides (as a user expects)."""
    name = function_name(function)
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
    env = {
        "AWS_LAMBDA_FUNCTION_NAME": name,
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(function.memory_mb),
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_LAMBDA_INITIALIZATION_TYPE": "on-demand",
        "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{name}",
        "AWS_LAMBDA_LOG_STREAM_NAME": "local/[$LATEST]layerkit",
        "AWS_LAMBDA_RUNTIME_API": runtime_api,
        "AWS_REGION": region,
        "AWS_DEFAULT_REGION": region,
        "AWS_EXECUTION_ENV": f"AWS_Lambda_{function.runtime}",
        "LAMBDA_TASK_ROOT": TASK_ROOT,
        "LAMBDA_RUNTIME_DIR": RUNTIME_DIR,
        "_HANDLER": function.handler,
        "TZ": ":UTC",
        "LANG": "en_US.UTF-8",
        "PATH": f"{LANG_DIR}/bin:/usr/local/bin:/usr/bin/:/bin:/opt/bin",
        "LD_LIBRARY_PATH": (
            f"{LANG_DIR}/lib:/lib64:/usr/lib64:{RUNTIME_DIR}:{RUNTIME_DIR}/lib:{TASK_ROOT}:{TASK_ROOT}/lib:/opt/lib"
        ),
    }
    env.update(function.environment)
    env.update(overrides)
    return env


def parse_overrides(pairs: list[str] | None) -> dict[str, str]:
    """``--env KEY=VALUE`` pairs."""
    result = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise InvokeError(f"--env {pair!r} is not KEY=VALUE; write e.g. --env LOG_LEVEL=DEBUG")
        result[key] = value
    return result
