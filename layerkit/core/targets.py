"""What code is built for: a Lambda Python runtime and an instruction set architecture.

The one home of every fact that depends on them: the Python version, the machine name wheels and ELF headers
use, the Docker platform, the manylinux ceiling and the environment markers are evaluated in.

The platform tag depends on the runtime because Lambda's Python runtimes sit on two operating systems:
python3.12 and newer run on Amazon Linux 2023 (glibc 2.34), python3.11 on Amazon Linux 2 (glibc 2.26), where a
``manylinux_2_28`` wheel fails to load. The ceiling we give the installer is the newest tag the OS accepts.
"""

from __future__ import annotations

import platform
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from layerkit.core.errors import UnsupportedTargetError


@dataclass(frozen=True)
class _Os:
    name: str
    manylinux: str  # the newest manylinux tag the OS loads (manylinux2014 is manylinux_2_17)
    glibc: tuple[int, int]  # the OS's own glibc


AMAZON_LINUX_2 = _Os("Amazon Linux 2", "manylinux_2_17", (2, 26))
AMAZON_LINUX_2023 = _Os("Amazon Linux 2023", "manylinux_2_34", (2, 34))

#: Lambda runtime -> the operating system it runs on.
RUNTIMES: dict[str, _Os] = {
    "python3.11": AMAZON_LINUX_2,
    "python3.12": AMAZON_LINUX_2023,
    "python3.13": AMAZON_LINUX_2023,
    "python3.14": AMAZON_LINUX_2023,
}


#: What each runtime provides beside the standard library: the AWS SDK for Python, at the versions the Lambda
#: guide's "Runtime-included SDK versions" table lists (checked 2026-12-05; the one place to update). Local invoke
#: puts them where Lambda has them, in /var/runtime, after the function's and the layers' own copies.
RUNTIME_SDK: dict[str, dict[str, str]] = {
    "python3.11": {"boto3": "1.40.4", "botocore": "1.40.4"},
    "python3.12": {"boto3": "1.40.4", "botocore": "1.40.4"},
    "python3.13": {"boto3": "1.40.4", "botocore": "1.40.4"},
    "python3.14": {"boto3": "1.40.4", "botocore": "1.40.4"},
}


@dataclass(frozen=True)
class _Machine:
    wheel: str  # the machine in wheel tags and ``platform.machine()`` on Linux
    elf: int  # e_machine in an ELF header
    docker: str  # Docker's --platform


#: Lambda's architecture names -> how the rest of the world names that machine.
ARCHITECTURES: dict[str, _Machine] = {
    "x86_64": _Machine("x86_64", 62, "linux/amd64"),
    "arm64": _Machine("aarch64", 183, "linux/arm64"),
}

#: ``platform.machine()`` on Linux, macOS and Windows -> Lambda's architecture name.
HOST_MACHINES = {"x86_64": "x86_64", "amd64": "x86_64", "aarch64": "arm64", "arm64": "arm64"}


class Destination(StrEnum):
    """Where built code lands on Lambda: a layer's ``/opt/python`` or a function's ``/var/task``."""

    LAYER = "/opt/python"
    FUNCTION = "/var/task"

    @property
    def zip_prefix(self) -> str:
        """The folder of the zip that holds the code: ``python/`` in a layer, the root in a function."""
        return "python/" if self is Destination.LAYER else ""


@dataclass(frozen=True)
class Target:
    """A Lambda runtime and architecture, e.g. ``Target("python3.12", "x86_64")``."""

    runtime: str
    architecture: str

    def __post_init__(self) -> None:
        if self.runtime not in RUNTIMES:
            raise UnsupportedTargetError(
                f"unknown runtime {self.runtime!r}: layerkit builds for {', '.join(RUNTIMES)}; pick one of them"
            )
        if self.architecture not in ARCHITECTURES:
            raise UnsupportedTargetError(
                f"unknown architecture {self.architecture!r}: use 'x86_64' or 'arm64' (Lambda's names)"
            )

    @property
    def python_version(self) -> str:
        """``"3.12"`` for ``python3.12``."""
        return self.runtime.removeprefix("python")

    @property
    def python_tag(self) -> str:
        """``"cp312"``: the interpreter and ABI tag of the runtime's wheels."""
        return "cp" + self.python_version.replace(".", "")

    @property
    def machine(self) -> str:
        """``x86_64`` or ``aarch64``: the name in wheel tags and ``platform.machine()``."""
        return ARCHITECTURES[self.architecture].wheel

    @property
    def elf_machine(self) -> int:
        """The ``e_machine`` of this architecture's ELF files."""
        return ARCHITECTURES[self.architecture].elf

    @property
    def docker_platform(self) -> str:
        """Docker's ``--platform`` value, e.g. ``linux/arm64``."""
        return ARCHITECTURES[self.architecture].docker

    @property
    def os(self) -> str:
        """The operating system the runtime runs on, e.g. ``Amazon Linux 2023``."""
        return RUNTIMES[self.runtime].name

    @property
    def manylinux(self) -> str:
        """The newest manylinux tag the runtime's OS accepts, e.g. ``manylinux_2_34``."""
        return RUNTIMES[self.runtime].manylinux

    @property
    def glibc(self) -> tuple[int, int]:
        """The glibc of the runtime's OS: a wheel needing a newer one does not load."""
        return RUNTIMES[self.runtime].glibc

    @property
    def platform_tag(self) -> str:
        """The wheel platform tag of the ceiling, e.g. ``manylinux_2_34_x86_64``."""
        return f"{self.manylinux}_{self.machine}"

    @property
    def uv_platform(self) -> str:
        """uv's ``--python-platform`` value: a ceiling, e.g. ``x86_64-manylinux_2_34``."""
        return f"{self.machine}-{self.manylinux}"

    @property
    def runtime_sdk(self) -> dict[str, str]:
        """The AWS SDK the runtime provides (distribution -> version), e.g. ``{"boto3": "1.40.4", ...}``."""
        return dict(RUNTIME_SDK[self.runtime])

    @property
    def bundling_image(self) -> str:
        """The AWS SAM build image the CDK bundles this runtime in."""
        return f"public.ecr.aws/sam/build-{self.runtime}"

    @property
    def lambda_image(self) -> str:
        """The AWS Lambda base image of this runtime."""
        return f"public.ecr.aws/lambda/python:{self.python_version}"

    def marker_environment(self) -> dict[str, str]:
        """PEP 508 marker values on Lambda for this target: markers are evaluated here, never on the build
        machine (a requirement for ``platform_machine == "aarch64"`` belongs in arm64 layers only)."""
        return {
            "implementation_name": "cpython",
            "implementation_version": f"{self.python_version}.0",
            "os_name": "posix",
            "platform_machine": self.machine,
            "platform_python_implementation": "CPython",
            "platform_release": "",
            "platform_system": "Linux",
            "platform_version": "",
            "python_full_version": f"{self.python_version}.0",
            "python_version": self.python_version,
            "sys_platform": "linux",
        }

    def __str__(self) -> str:
        return f"{self.runtime}/{self.architecture}"


def host_architecture() -> str:
    """This machine's architecture in Lambda's names (``x86_64`` or ``arm64``), or its own name if neither."""
    machine = platform.machine().lower()
    return HOST_MACHINES.get(machine, machine)


def python_runtime(name: str) -> Any:
    """The CDK's ``lambda.Runtime`` object of a runtime name (``python3.12``): the CDK compares runtimes as its own
    objects, never by name alone."""
    # lazy: the CDK starts Node.js; only a construct needs its runtime objects
    from aws_cdk import aws_lambda as lambda_

    return getattr(lambda_.Runtime, "PYTHON_" + name.removeprefix("python").replace(".", "_"))


def lambda_architecture(name: str) -> Any:
    """The CDK's ``lambda.Architecture`` object of an architecture name (``x86_64``, ``arm64``)."""
    # lazy: the CDK starts Node.js; only a construct needs its architecture objects
    from aws_cdk import aws_lambda as lambda_

    return lambda_.Architecture.ARM_64 if name == "arm64" else lambda_.Architecture.X86_64


@dataclass(frozen=True)
class Variant:
    """One layer version of a layer built for several targets: the architectures and runtimes it serves."""

    architectures: tuple[str, ...]
    runtimes: tuple[str, ...]

    @property
    def key(self) -> str:
        """``x86_64``, ``arm64`` or ``all``: how the version is named (construct ids, SSM parameters)."""
        return self.architectures[0] if len(self.architectures) == 1 else "all"

    def serves(self, target: Target) -> bool:
        return target.runtime in self.runtimes and target.architecture in self.architectures


def targets_of(runtimes: Sequence[str], architectures: Sequence[str]) -> list[Target]:
    """Every (runtime, architecture) pair, checked; duplicates dropped, the order kept."""
    if not runtimes or not architectures:
        raise UnsupportedTargetError("a layer needs at least one runtime and one architecture; list them, e.g. "
                                     "runtimes=[Runtime.PYTHON_3_12], architectures=[Architecture.X86_64]")
    return [Target(r, a) for r in dict.fromkeys(runtimes) for a in dict.fromkeys(architectures)]



