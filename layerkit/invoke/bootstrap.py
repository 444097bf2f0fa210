"""The sandbox's bootstrap: Lambda's Python path order, then the official runtime client's loop.

Run inside the sandbox by the function's own Python (``/var/lang/bin/python3.X -S``), never imported by the
kit. Like the managed runtime's bootstrap: ``/var/task``, then the layers' ``/opt/python/lib/python3.X/
site-packages`` and ``/opt/python`` (processed by ``site.addsitedir``, so ``.pth`` files in layers work), then
the runtime's own paths. A function that sets PYTHONPATH replaces the ``/opt`` entries, as on Lambda.
"""

import os
import site
import sys


def lambda_sys_path() -> tuple:
    """(the new sys.path, the layer folders to process for .pth files, the runtime's folder)."""
    version = f"{sys.version_info[0]}.{sys.version_info[1]}"
    task_root = os.environ.get("LAMBDA_TASK_ROOT", "/var/task")
    runtime_dir = os.environ.get("LAMBDA_RUNTIME_DIR", "/var/runtime")
    own = [p for p in sys.path[1:] if p and p != runtime_dir]  # sys.path[0] is this script's folder
    if os.environ.get("PYTHONPATH"):
        layers: list = []
    else:
        layers = [f"/opt/python/lib/python{version}/site-packages", "/opt/python"]
    return [task_root, *layers, *[p for p in own if p not in layers]], layers, runtime_dir


def main() -> None:
    path, layers, runtime_dir = lambda_sys_path()
    sys.path[:] = path
    for directory in layers:
        site.addsitedir(directory)
    sys.path.append(runtime_dir)  # awslambdaric lives here, after everything the function brings

    from awslambdaric.__main__ import main as runtime_client_main

    runtime_client_main([sys.argv[0], sys.argv[1]])


if __name__ == "__main__":
    main()
