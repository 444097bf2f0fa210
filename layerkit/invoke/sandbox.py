"""A Lambda-shaped execution environment without Docker: bubblewrap, the function's own Python, awslambdaric.

Inside: the interpreter's prefix at ``/var/lang`` (its site-packages hidden), awslambdaric and the bootstrap at
``/var/runtime``, the code at ``/var/task``, the merged layers at ``/opt``, Lambda's user id, no host environment
variables, and the host's ``/usr`` for the C library. As on Lambda, everything is read-only but ``/tmp`` (its size
the function's ephemeral storage), and:

- **Network**: the sandbox has a network namespace of its own: its own loopback, nothing of this machine's (no
  server on its 127.0.0.1, no abstract unix socket, no link-local address such as an instance metadata endpoint,
  no private range). Outbound internet comes through ``slirp4netns`` (``--disable-host-loopback``) where the
  machine has it; where it does not, the function has no network, and the invoke says so in one line.
  ``network="host"`` shares this machine's network instead (to reach a local emulator on 127.0.0.1). The Runtime
  API's socket is made inside the namespace and handed to the kit (:mod:`layerkit.invoke.bootstrap`).
- **Memory**: the memory size is a hard limit in a memory cgroup where the machine allows one
  (:mod:`layerkit.invoke.cgroup`); elsewhere the invoke judges the peak after the fact.
"""

from __future__ import annotations

import array
import contextlib
import functools
import json
import os
import resource
import select
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable
from enum import StrEnum
from pathlib import Path
from typing import IO

from layerkit.assembly import Function
from layerkit.core.cache import resolve_cache_dir
from layerkit.core.errors import InvokeError
from layerkit.core.targets import host_architecture
from layerkit.invoke import cgroup
from layerkit.invoke.environment import LANG_DIR, RUNTIME_DIR, TASK_ROOT
from layerkit.invoke.layout import Layout
from layerkit.invoke.runtime_api import RuntimeApi
from layerkit.rules.limits import MAX_OPEN_FILES, MAX_PROCESSES

#: Lambda runs functions as sbx_user1051.
LAMBDA_UID, LAMBDA_GID = 993, 990
#: Read-only host files a Python process commonly needs (certificates, name service switch).
HOST_ETC = ("ssl", "pki", "ca-certificates", "hosts", "nsswitch.conf")
#: Where the Runtime API listens inside a sandbox with its own network (its own loopback: any port is free).
INSIDE_ADDRESS = "127.0.0.1:9001"
#: The folder, inside the sandbox, of the unix socket the bootstrap hands the Runtime API's socket over.
HANDOFF_DIR = "/var/runtime-api"
#: slirp4netns's own addresses: the gateway (this machine, refused with --disable-host-loopback) and its DNS.
SLIRP_DNS = "10.0.2.3"
#: Made unreachable inside the sandbox: link-local (instance metadata), private and shared ranges. slirp4netns's
#: own 10.0.2.0/24 stays reachable: its route is more specific.
BLOCKED_NETWORKS = ("169.254.0.0/16", "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10")
DEFAULT_TMP_MB = 512
_SETUP_TIMEOUT_S = 10.0


class Network(StrEnum):
    """The network a function gets in the sandbox."""

    SANDBOX = "sandbox"  # its own: internet through slirp4netns where installed, never this machine
    HOST = "host"  # this machine's (a local emulator on 127.0.0.1)
    NONE = "none"  # its own loopback only


def bwrap_binary() -> str:
    found = shutil.which("bwrap")
    if not found:
        raise InvokeError(
            "bubblewrap (bwrap) is not installed, and no Docker daemon answers: install it "
            "(apt-get install bubblewrap, dnf install bubblewrap, pacman -S bubblewrap) or start Docker"
        )
    return found


def user_mode_network() -> str | None:
    """The slirp4netns that gives a sandbox outbound internet, or None."""
    return shutil.which("slirp4netns")


def check_architecture(function: Function) -> None:
    host = host_architecture()
    if function.architecture != host:
        raise InvokeError(
            f"function {function.id} is {function.architecture} and this machine is {host}: the sandbox runs "
            "native code only; invoke it on a machine of that architecture, or with Docker and QEMU emulation "
            "(--backend docker)"
        )


def _system_binds() -> list[str]:
    args = ["--ro-bind", "/usr", "/usr"]
    for top in ("/lib", "/lib64", "/bin", "/sbin"):
        if os.path.islink(top):
            args += ["--symlink", os.readlink(top), top]
        elif os.path.isdir(top):
            args += ["--ro-bind", top, top]
    for name in HOST_ETC:
        args += ["--ro-bind-try", f"/etc/{name}", f"/etc/{name}"]
    return args


def sandbox_command(function: Function, layout: Layout, runtime_dir: Path, python: Path, env: dict[str, str],
                    *, network: Network = Network.SANDBOX, work: Path | None = None,
                    tmp: Path | None = None) -> list[str]:
    """The bwrap command line that starts the function's execution environment. ``work`` is a private folder of
    the kit's (the hand-over socket, the sandbox's resolv.conf); it is needed unless ``network`` is host. ``tmp``
    is the host folder that is the function's ``/tmp`` (disk, sized by :class:`SandboxLauncher`); without one, a
    512 MB tmpfs."""
    prefix = python.parent.parent
    version = function.target.python_version
    command = [bwrap_binary(), "--unshare-all", "--die-with-parent", "--new-session",
               "--uid", str(LAMBDA_UID), "--gid", str(LAMBDA_GID), *_system_binds()]
    if network is Network.HOST:
        command += ["--share-net", "--ro-bind-try", "/etc/resolv.conf", "/etc/resolv.conf"]
    else:
        if work is None:
            raise ValueError("a sandbox with its own network needs a work folder")
        (work / "resolv.conf").write_text(f"nameserver {SLIRP_DNS}\n" if network is Network.SANDBOX else "")
        command += ["--ro-bind", str(work / "resolv.conf"), "/etc/resolv.conf"]
    command += [
        "--proc", "/proc", "--dev", "/dev",
        *(["--bind", str(tmp), "/tmp"] if tmp is not None else
          ["--size", str(DEFAULT_TMP_MB * 1024 * 1024), "--tmpfs", "/tmp"]),
        "--tmpfs", "/var",
        "--ro-bind", str(prefix), LANG_DIR,
        "--tmpfs", f"{LANG_DIR}/lib/python{version}/site-packages",  # the host's packages stay invisible
        "--ro-bind", str(runtime_dir), RUNTIME_DIR,
        "--ro-bind", str(layout.task), TASK_ROOT,
        "--ro-bind", str(layout.opt), "/opt",
    ]
    if network is not Network.HOST:
        command += ["--ro-bind", str(work), HANDOFF_DIR]
    # As on Lambda, nothing is writable but /tmp (the remounts are not recursive: each mount is named).
    for mount in (f"{LANG_DIR}/lib/python{version}/site-packages", "/var", "/dev", "/"):
        command += ["--remount-ro", mount]
    command += ["--chdir", TASK_ROOT, "--clearenv"]
    for key, value in env.items():
        command += ["--setenv", key, value]
    return [*command, f"{LANG_DIR}/bin/{python.name}", "-S", f"{RUNTIME_DIR}/bootstrap.py", function.handler]


def _descendants(pid: int) -> list[int]:
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        try:
            children = Path(f"/proc/{current}/task/{current}/children").read_text().split()
        except OSError:
            continue
        found += [int(c) for c in children]
        todo += [int(c) for c in children]
    return found


def _peak_rss_mb(pid: int) -> int:
    """Peak resident memory of the environment's processes, as Lambda's "Max Memory Used"."""
    peak_kb = 0
    for child in _descendants(pid):
        try:
            for line in Path(f"/proc/{child}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    peak_kb = max(peak_kb, int(line.split()[1]))
        except OSError:
            continue
    return max(1, round(peak_kb / 1024))


#: A unix socket's path must fit in 108 bytes: the hand-over socket's folder is kept short.
_SOCKET_PATH_MAX = 100


def _work_folder(parent: Path | None) -> Path:
    """A private folder for one sandbox, named after this process, in the temporary folder (a unix socket's path
    must be short: a deep cache folder would not do); those of processes that are gone (an invoke that was
    killed) are removed."""
    parent = Path(parent or tempfile.gettempdir())
    if len(str(parent)) + 40 > _SOCKET_PATH_MAX:
        parent = Path("/tmp")
    parent.mkdir(parents=True, exist_ok=True)
    for stale in parent.glob(".layerkit-sandbox-*"):
        with contextlib.suppress(ValueError, IndexError):
            if _gone(int(stale.name.split("-")[2])):
                shutil.rmtree(stale, ignore_errors=True)
    return Path(tempfile.mkdtemp(prefix=f".layerkit-sandbox-{os.getpid()}-", dir=parent))


def _enter(groups: cgroup.Cgroups, limits: dict[int, int]) -> Callable[[], None]:
    """What the sandbox's launcher does before it becomes bubblewrap: join the cgroups, take Lambda's resource
    limits (everything it starts inherits both)."""

    def in_child() -> None:
        groups.join(os.getpid())
        for kind, value in limits.items():
            resource.setrlimit(kind, (value, value))

    return in_child


def _tasks_of(uid: int) -> int:
    """The processes and threads this user runs now: the kernel counts them against ``RLIMIT_NPROC`` too."""
    count = 0
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                if entry.stat().st_uid == uid:
                    count += len(os.listdir(f"/proc/{entry.name}/task"))
    return count


@functools.cache
def loop_mounts() -> bool:
    """Whether this process may mount a file system image in a mount namespace of its own (root, with loop
    devices, ``mkfs.ext4`` and ``unshare``): tried once, on a small image."""
    if os.geteuid() != 0 or not all(shutil.which(tool) for tool in ("unshare", "mkfs.ext4", "mount")):
        return False
    with tempfile.TemporaryDirectory(prefix="layerkit-loop-") as folder:
        image, mountpoint = Path(folder) / "probe.ext4", Path(folder) / "mnt"
        mountpoint.mkdir()
        if not make_file_system(image, 1):
            return False
        probe = subprocess.run(["unshare", "--mount", "--propagation", "private", "--", "mount", "-o",
                                "loop,nosuid,nodev", str(image), str(mountpoint)], capture_output=True, check=False,
                               timeout=_SETUP_TIMEOUT_S)
        return probe.returncode == 0


def received_listener(handoff: socket.socket, alive: Callable[[], bool]) -> socket.socket | None:
    """The Runtime API's listening socket, made by the bootstrap in the function's own network namespace and sent
    over the unix socket ``handoff`` (``SCM_RIGHTS``); None if the runtime ended (``alive``) or never sent it."""
    handoff.settimeout(0.1)
    deadline = time.monotonic() + _SETUP_TIMEOUT_S * 6  # a container may take a while to start
    while time.monotonic() < deadline:
        try:
            channel, _ = handoff.accept()
        except TimeoutError:
            if not alive():
                return None
            continue
        with channel:
            channel.settimeout(_SETUP_TIMEOUT_S)
            _, ancillary, _, _ = channel.recvmsg(1, socket.CMSG_LEN(array.array("i").itemsize))
        for level, kind, data in ancillary:
            if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                fds = array.array("i")
                fds.frombytes(data[:fds.itemsize])
                return socket.socket(fileno=fds[0])
        return None
    return None


def make_file_system(image: Path, size_mb: int, owner: tuple[int, int] | None = None) -> bool:
    """An empty ext4 file system of ``size_mb`` in the sparse file ``image``, its root ``owner``'s (default: this
    process's own ids, which map to Lambda's inside the sandbox), nothing reserved for root."""
    uid, gid = owner or (os.geteuid(), os.getegid())
    with open(image, "wb") as file:
        file.truncate(size_mb * 1024 * 1024)
    made = subprocess.run(["mkfs.ext4", "-q", "-F", "-m", "0", "-O", "^has_journal",
                           "-E", f"lazy_itable_init=1,root_owner={uid}:{gid}", str(image)],
                          capture_output=True, check=False, timeout=60)
    return made.returncode == 0


def _gone(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True
    return state in ("Z", "X")


class SandboxLauncher:
    """Runs the function's runtime in a bubblewrap sandbox (see the module)."""

    def __init__(self, function: Function, command_for: Callable[[str, dict[str, str], Network, Path | None],
                                                                  list[str]],
                 network: Network = Network.SANDBOX, work_parent: Path | None = None,
                 log: Callable[[str], None] = lambda _: None, cache_dir: Path | None = None) -> None:
        self.function = function
        self._command_for = command_for  # (Runtime API address, extra env, network, work folder) -> command line
        self.network = network
        self._work_parent = work_parent
        self._cache_dir = cache_dir
        self._log = log
        self._process: subprocess.Popen[bytes] | None = None
        self._child: int | None = None
        self._slirp: subprocess.Popen[bytes] | None = None
        self._cgroups: cgroup.Cgroups | None = None
        self._work: Path | None = None
        self._image: Path | None = None
        self._watchdog: int | None = None  # the write end of the pipe the watchdog waits on
        self._slirp_exit: int | None = None  # the write end of slirp4netns's --exit-fd
        self._warned = False

    @property
    def enforces_memory(self) -> bool:
        return self._cgroups is not None and self._cgroups.limits_memory

    def start(self, api: RuntimeApi) -> IO[bytes]:
        """Start the runtime with ``api`` serving it; the runtime's output (stdout and stderr)."""
        network = self.network
        slirp = user_mode_network() if network is Network.SANDBOX else None
        if network is Network.SANDBOX and slirp is None and not self._warned:
            self._log("layerkit: no slirp4netns on this machine, so the function runs without a network (install "
                      "slirp4netns for its outbound internet, or pass --network host to share this machine's)")
            self._warned = True
        self._work = _work_folder(self._work_parent)
        os.chmod(self._work, 0o755)  # the sandbox's user connects to the hand-over socket in it
        (self._work / "tmp").mkdir()
        handoff: socket.socket | None = None
        extra: dict[str, str] = {}
        if network is Network.HOST:
            address = api.listen_here()
        else:
            address = INSIDE_ADDRESS
            handoff = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            handoff.bind(str(self._work / "handoff.sock"))
            os.chmod(self._work / "handoff.sock", 0o777)
            handoff.listen(1)
            extra["LAYERKIT_RUNTIME_API_HANDOFF"] = f"{HANDOFF_DIR}/handoff.sock"
        command = self._command_for(address, extra, network, self._work)
        info_r, info_w = os.pipe()
        block_r, block_w = os.pipe()
        bwrap_at = command.index("--unshare-all")
        command[bwrap_at:bwrap_at] = ["--info-fd", str(info_w), "--block-fd", str(block_r)]
        self._cgroups = groups = cgroup.create(self.function.memory_mb)
        self._start_watchdog()
        mount_tmp = self._disk_tmp()
        if mount_tmp is not None:  # a private mount namespace holds the /tmp file system: it goes when the sandbox goes
            command = [*mount_tmp, *command]
        limits = self._rlimits(file_size=mount_tmp is None)
        try:
            self._process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                             stderr=subprocess.STDOUT, start_new_session=True,
                                             pass_fds=(info_w, block_r), preexec_fn=_enter(groups, limits))
        finally:
            os.close(info_w)
            os.close(block_r)
        try:
            self._child = self._read_child_pid(info_r)
            if slirp is not None:
                self._connect(slirp, self._child)
            os.write(block_w, b"go")
            if handoff is not None:
                api.serve(self._accept(handoff))
        except BaseException:
            self.kill()
            raise
        finally:
            os.close(info_r)
            os.close(block_w)
            if handoff is not None:
                handoff.close()
        assert self._process.stdout is not None
        return self._process.stdout

    def _rlimits(self, *, file_size: bool) -> dict[int, int]:
        """Lambda's caps as resource limits of the sandbox: open files always; processes and threads (counted per
        user by the kernel, so this user's other processes are added; root is not held by it, a pids cgroup holds
        root's sandbox); with a ``/tmp`` that is a plain folder, no file larger than the ephemeral storage."""
        limits = {resource.RLIMIT_NOFILE: MAX_OPEN_FILES}
        if os.geteuid() != 0:
            limits[resource.RLIMIT_NPROC] = MAX_PROCESSES + cgroup.SANDBOX_PROCESSES + _tasks_of(os.getuid())
        if file_size:
            limits[resource.RLIMIT_FSIZE] = self.function.ephemeral_storage_mb * 1024 * 1024
        return limits

    def _disk_tmp(self) -> list[str] | None:
        """The launcher that gives the sandbox a ``/tmp`` of the function's ephemeral storage on disk: a file system
        of exactly that size in a file of the kit's cache, mounted in a mount namespace of the sandbox's own (so
        that nothing is left mounted when it ends). Where this machine does not allow it (not root, no loop
        devices), ``/tmp`` is a plain folder on disk, no file in it larger than that size (:meth:`_rlimits`)."""
        assert self._work is not None
        if not loop_mounts():
            return None

        folder = resolve_cache_dir(self._cache_dir) / "sandbox-tmp"
        folder.mkdir(parents=True, exist_ok=True)
        self._image = folder / f"{self._work.name}.ext4"
        if not make_file_system(self._image, self.function.ephemeral_storage_mb):
            self._image.unlink(missing_ok=True)
            self._image = None
            return None
        self._write_watchdog_paths()
        return ["unshare", "--mount", "--propagation", "private", "--", "/bin/sh", "-c",
                'mount -o loop,nosuid,nodev "$0" "$1" || exit 125; shift; exec "$@"',
                str(self._image), str(self._work / "tmp")]

    def _start_watchdog(self) -> None:
        """A process that outlives the kit: when the kit ends, however it ends (``kill -9`` included), the pipe it
        holds closes, and the watchdog kills what is left in the sandbox's cgroups, removes them, its work folder
        and its ``/tmp`` file."""
        assert self._work is not None
        assert self._cgroups is not None
        read_end, self._watchdog = os.pipe()
        (self._work / "cleanup").write_text("\n".join(str(p) for p in self._cgroups.made) + "\n")
        script = ('cat >/dev/null; while read -r cg; do [ -n "$cg" ] || continue; i=0; '
                  'while [ -d "$cg" ] && [ $i -lt 200 ]; do kill -9 $(cat "$cg/cgroup.procs" 2>/dev/null) '
                  '2>/dev/null; rmdir "$cg" 2>/dev/null; i=$((i+1)); [ -d "$cg" ] && sleep 0.05; done; '
                  'done < "$0/cleanup"; [ -f "$0/image" ] && rm -f "$(cat "$0/image")"; rm -rf "$0"')
        try:
            subprocess.Popen(["/bin/sh", "-c", script, str(self._work)], stdin=read_end, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL, start_new_session=True)
        finally:
            os.close(read_end)

    def _write_watchdog_paths(self) -> None:
        assert self._work is not None
        if self._image is not None:
            (self._work / "image").write_text(str(self._image))

    def _failed(self, what: str) -> InvokeError:
        output = b""
        if self._process is not None and self._process.stdout is not None and self._process.poll() is not None:
            output = self._process.stdout.read() or b""
        detail = output.decode(errors="replace").strip().splitlines()[-1:] or ["no output"]
        return InvokeError(f"the sandbox did not start ({what}: {detail[0]}); check that bubblewrap works here "
                           "('bwrap --unshare-all --ro-bind / / true')")

    def _read_child_pid(self, info_r: int) -> int:
        data = b""
        deadline = time.monotonic() + _SETUP_TIMEOUT_S
        while time.monotonic() < deadline:
            ready, _, _ = select.select([info_r], [], [], 0.1)
            if ready:
                chunk = os.read(info_r, 4096)
                if not chunk:
                    break
                data += chunk
                with contextlib.suppress(ValueError):
                    return int(json.loads(data)["child-pid"])
            elif self._process is not None and self._process.poll() is not None:
                break
        raise self._failed("bubblewrap gave no child process")

    def _connect(self, slirp: str, pid: int) -> None:
        """Outbound internet for the namespace of ``pid``: private and link-local ranges made unreachable first,
        then slirp4netns, which refuses connections to this machine's loopback."""
        enter = ["nsenter", "-t", str(pid), "-n"] if os.geteuid() == 0 else \
            ["nsenter", "-t", str(pid), "-U", "-n", "--preserve-credentials"]
        routes = "".join(f"route add unreachable {network}\n" for network in BLOCKED_NETWORKS)
        try:
            closed = subprocess.run([*enter, "ip", "-batch", "-"], input=routes, capture_output=True, text=True,
                                    check=False)
        except FileNotFoundError:
            closed = None
        if closed is None or closed.returncode != 0:
            why = closed.stderr.strip() if closed is not None else "nsenter is missing"
            raise InvokeError(f"the sandbox's network could not be closed to private and link-local addresses "
                              f"({why or 'ip route failed'}); install iproute2 and util-linux, or pass --network none")
        ready_r, ready_w = os.pipe()
        exit_r, self._slirp_exit = os.pipe()  # closed when the kit ends, however: slirp4netns ends with it
        try:
            self._slirp = subprocess.Popen(
                [slirp, "--configure", "--mtu=65520", "--disable-host-loopback", f"--ready-fd={ready_w}",
                 f"--exit-fd={exit_r}", "--netns-type=path", f"/proc/{pid}/ns/net", "tap0"],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                pass_fds=(ready_w, exit_r), start_new_session=True)
        finally:
            os.close(ready_w)
            os.close(exit_r)
        try:
            ready, _, _ = select.select([ready_r], [], [], _SETUP_TIMEOUT_S)
            if not ready or os.read(ready_r, 1) != b"1":
                error = self._slirp.stderr.read1(500).decode(errors="replace").strip() if self._slirp.stderr else ""
                raise InvokeError(f"slirp4netns did not connect the sandbox ({error or 'no answer'}); pass "
                                  "--network none to invoke without a network")
        finally:
            os.close(ready_r)

    def _accept(self, handoff: socket.socket) -> socket.socket:
        """The Runtime API's listening socket, made inside the sandbox and sent over ``handoff``."""
        listener = received_listener(handoff, lambda: self._process is not None and self._process.poll() is None)
        if listener is None:
            raise self._failed("the runtime never handed over the Runtime API's socket")
        return listener

    def exit_code(self) -> int | None:
        return self._process.poll() if self._process is not None else -1

    def wait_running(self) -> float:
        """The runtime runs as soon as the sandbox is unblocked."""
        return time.perf_counter()

    def kill(self) -> None:
        """Stop the runtime and wait until every process of the sandbox is gone, then free what it used."""
        if self._process is not None:
            if self._process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self._process.pid, signal.SIGKILL)
            if self._child is not None:  # the sandbox's own session: killed by pid, awaited until it is gone
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(self._child, signal.SIGKILL)
                deadline = time.monotonic() + 5
                while not _gone(self._child) and time.monotonic() < deadline:
                    time.sleep(0.005)
            self._process.wait()
            if self._process.stdout is not None:
                self._process.stdout.close()
            self._process = None
            self._child = None
        if self._slirp is not None:
            self._slirp.kill()
            self._slirp.wait()
            if self._slirp.stderr is not None:
                self._slirp.stderr.close()
            self._slirp = None
        for descriptor in (self._slirp_exit, self._watchdog):
            if descriptor is not None:
                with contextlib.suppress(OSError):
                    os.close(descriptor)
        self._slirp_exit = None
        if self._cgroups is not None:
            self._cgroups.remove()
            self._cgroups = None
        if self._image is not None:
            self._image.unlink(missing_ok=True)
            self._image = None
        if self._work is not None:
            shutil.rmtree(self._work, ignore_errors=True)
            self._work = None
        if self._watchdog is not None:  # everything is gone: the watchdog has nothing left to do
            self._watchdog = None

    def max_memory_mb(self) -> int:
        """The sandbox's peak memory: its cgroup's, else its processes' peak resident memory."""
        if self._cgroups is not None and self._cgroups.limits_memory:
            return max(1, round(self._cgroups.peak_bytes() / 1024 / 1024))
        return _peak_rss_mb(self._process.pid) if self._process is not None else 1

    def out_of_memory(self) -> bool:
        return self._cgroups is not None and self._cgroups.oom_kills() > 0
