"""Where installed files sit in a layer, and which of them are compiled: names only, never a file's content.

Lambda puts ``/opt/python/lib/python3.X/site-packages`` (first) and ``/opt/python`` on ``sys.path``; a layer built
for several runtimes keeps what differs per runtime in that runtime's site-packages.
"""

from __future__ import annotations

import re

#: A layer member's folder on ``sys.path``: ``python/``, or a runtime's site-packages under it.
ON_SYS_PATH = re.compile(r"^python/(?:lib/(?P<runtime>python3\.\d+)/site-packages/)?")


def site_packages(runtime: str) -> str:
    """``python/lib/python3.12/site-packages/`` for ``python3.12``."""
    return f"python/lib/python{runtime.removeprefix('python')}/site-packages/"


def runtime_of(name: str) -> str | None:
    """``python3.12`` for a member of ``python/lib/python3.12/site-packages/``; None for one every runtime sees."""
    match = ON_SYS_PATH.match(name)
    return match.group("runtime") if match else None


def importable(name: str) -> str:
    """A layer member's path as Python imports it (its ``sys.path`` folder left out); other names unchanged."""
    return ON_SYS_PATH.sub("", name, count=1)


def is_compiled(path: str) -> bool:
    """Whether a file name is that of a shared object or an extension module (``x.so``, ``x.so.1``, ``x.pyd``,
    ``x.dylib``)."""
    name = path.rsplit("/", 1)[-1]
    return name.endswith((".so", ".pyd", ".dylib")) or ".so." in name


def top_level(name: str) -> str:
    """The import name a module file or package folder directly on ``sys.path`` gives (``six.py`` and
    ``_cffi.cpython-312-x86_64-linux-gnu.so`` give ``six`` and ``_cffi``; a folder its own name)."""
    return name.split(".", 1)[0] if name.endswith((".py", ".pyd")) or is_compiled(name) else name
