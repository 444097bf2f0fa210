"""What a layer is built for: a Lambda Python runtime and an instruction set architecture.

The platform tag depends on the runtime because Lambda's Python runtimes sit on two operating systems:
python3.12 and newer run on Amazon Linux 2023 (glibc 2.34), python3.11 on Amazon Linux 2 (glibc 2.26), where a
``manylinux_2_28`` wheel fails to load. The ceiling we give the installer is the newest tag the OS accepts.
"""

from __future__ import annotations

from dataclasses import dataclass

from layerkit.errors import UnsupportedTargetError

#: Lambda runtime -> newest manylinux tag its OS can load.
MANYLINUX_CEILING: dict[str, str] = {
    "python3.11": "manylinux_2_17",  # Amazon Linux 2, glibc 2.26; manylinux2014 is the safe tag
    "python3.12": "manylinux_2_34",  # Amazon Linux 2023, glibc 2.34
    "python3.13": "manylinux_2_34",
    "python3.14": "manylinux_2_34",
}

#: Lambda's architecture names -> the machine name used by wheels and ELF headers.
MACHINES: dict[str, str] = {"x86_64": "x86_64", "arm64": "aarch64"}


@dataclass(frozen=True)
class Target:
    """A Lambda runtime and architecture, e.g. ``Target("python3.12", "x86_64")``."""

    runtime: str
    architecture: str

    def __post_init__(self) -> None:
        if self.runtime not in MANYLINUX_CEILING:
            known = ", ".join(MANYLINUX_CEILING)
            raise UnsupportedTargetError(
                f"unknown runtime {self.runtime!r}: layerkit builds for {known}; pick one of them"
            )
        if self.architecture not in MACHINES:
            raise UnsupportedTargetError(
                f"unknown architecture {self.architecture!r}: use 'x86_64' or 'arm64' (Lambda's names)"
            )

    @property
    def python_version(self) -> str:
        """``"3.12"`` for ``python3.12``."""
        return self.runtime.removeprefix("python")

    @property
    def machine(self) -> str:
        """``x86_64`` or ``aarch64``: the name in wheel tags and ELF headers."""
        return MACHINES[self.architecture]

    @property
    def manylinux(self) -> str:
        """The newest manylinux tag the runtime's OS accepts, e.g. ``manylinux_2_34``."""
        return MANYLINUX_CEILING[self.runtime]

    @property
    def platform_tag(self) -> str:
        """The wheel platform tag, e.g. ``manylinux_2_34_x86_64``."""
        return f"{self.manylinux}_{self.machine}"

    @property
    def uv_platform(self) -> str:
        """uv's ``--python-platform`` value: a ceiling, e.g. ``x86_64-manylinux_2_34``."""
        return f"{self.machine}-{self.manylinux}"

    def __str__(self) -> str:
        return f"{self.runtime}/{self.architecture}"
