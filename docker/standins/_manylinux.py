"""PEP 600's hook, in the stand-in build image: accept manylinux wheels up to glibc 2.34, Amazon Linux 2023's.

Debian trixie has glibc 2.41; without this, pip in the stand-in would pick wheels that Lambda cannot load.
"""


def manylinux_compatible(tag_major: int, tag_minor: int, tag_arch: str) -> bool:
    return (tag_major, tag_minor) <= (2, 34)
