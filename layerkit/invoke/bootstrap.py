"""The sandbox's bootstrap: the Runtime API's socket, Lambda's Python path order, then the official runtime client.

In a container (``bootstrap.py --then ENTRYPOINT HANDLER``) it hands the socket over, then execs the image's own
entrypoint, which runs the image's runtime with Lambda's path order itself.

Run inside the sandbox (and the stand-in Lambda image) by the function's own Python (``/var/lang/bin/python3.X
-S``), never imported by the kit.

1. With ``LAYERKIT_RUNTIME_API_HANDOFF`` set (the sandbox has a network namespace of its own), it makes the
   Runtime API's listening socket on this namespace's 127.0.0.1, at the port of ``AWS_LAMBDA_RUNTIME_API``, and
   hands it to the kit over that unix socket (``SCM_RIGHTS``): the kit serves the Runtime API on it, and the
   function's network never includes this machine's. The variable is removed before anything else runs.
2. Like the managed runtime's bootstrap: ``/var/task``, then the layers' ``/opt/python/lib/python3.X/
   site-packages`` and ``/opt/python`` (processed by ``site.addsitedir``, so ``.pth`` files in layers work), then
   the runtime's own paths. A function that sets PYTHONPATH replaces the ``/opt`` entries, as on Lambda.
"""

import array
import os
import site
import socket
import sys

HANDOFF = "LAYERKIT_RUNTIME_API_HANDOFF"


def hand_over_runtime_api() -> None:
    """Listen where ``AWS_LAMBDA_RUNTIME_API`` says, in this namespace, and give the socket to the kit."""
    path = os.environ.pop(HANDOFF, None)
    if not path:
        return
    host, _, port = os.environ["AWS_LAMBDA_RUNTIME_API"].rpartition(":")
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind((host, int(port)))
    listener.listen(16)
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as channel:
        channel.connect(path)
        channel.sendmsg([b"L"], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", [listener.fileno()]))])
    listener.close()  # the kit holds it now; the function cannot accept on it


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
    if sys.argv[1:2] == ["--then"]:  # in a container: the socket, then the image's own entrypoint and runtime
        hand_over_runtime_api()
        os.execv(sys.argv[2], sys.argv[2:])
    hand_over_runtime_api()
    path, layers, runtime_dir = lambda_sys_path()
    sys.path[:] = path
    for directory in layers:
        site.addsitedir(directory)
    sys.path.append(runtime_dir)  # awslambdaric lives here, after everything the function brings

    # lazy: the runtime client is importable only once sys.path is the one Lambda sets
    from awslambdaric.__main__ import main as runtime_client_main

    runtime_client_main([sys.argv[0], sys.argv[1]])


if __name__ == "__main__":
    main()
