"""A package index served by the tests on 127.0.0.1: PEP 503 pages over a folder of wheels.

Lock tools (uv, poetry, pipenv) lock against it, so no lock file in the repository names a public index, and
a private index (basic auth whose password the tests rotate) is one constructor argument away.
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
import re
import shutil
import threading
import urllib.request
from collections.abc import Iterable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


def normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


class PackageIndex:
    """Serves ``folder``'s wheels at ``http://127.0.0.1:<port>/simple/``; ``credentials`` turn on basic auth."""

    def __init__(self, folder: Path, credentials: tuple[str, str] | None = None, port: int = 0,
                 mirror: bool = True) -> None:
        self.folder = folder
        self.credentials = credentials
        self.requests: list[str] = []
        index = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: object) -> None:
                pass

            def do_HEAD(self) -> None:
                self.do_GET(head=True)

            def do_GET(self, head: bool = False) -> None:
                index.requests.append(self.path)
                if not index._authorized(self.headers.get("Authorization")):
                    self.send_response(401)
                    self.send_header("WWW-Authenticate", 'Basic realm="tests"')
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                status, content_type, body = index._page(self.path.split("?")[0])
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if not head:
                    self.wfile.write(body)

        self._server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        # The same index at the same address where the Docker engine's containers are (docker/engine.sh runs it
        # in a network namespace of its own): a bundling container on the engine's host network finds it there.
        self._mirror = _mirror_in_engine_namespace(folder, self.port, credentials) if mirror else None

    @property
    def port(self) -> int:
        return self._server.server_address[1]

    def url(self, credentials: tuple[str, str] | None = None) -> str:
        """The simple index URL, with ``user:password@`` when given."""
        auth = f"{credentials[0]}:{credentials[1]}@" if credentials else ""
        return f"http://{auth}127.0.0.1:{self.port}/simple/"

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        if self._mirror is not None:
            self._mirror.kill()
            self._mirror.wait()

    def _authorized(self, header: str | None) -> bool:
        if self.credentials is None:
            return True
        expected = base64.b64encode(":".join(self.credentials).encode()).decode()
        return header == f"Basic {expected}"

    def _wheels(self) -> dict[str, list[Path]]:
        projects: dict[str, list[Path]] = {}
        for wheel in sorted(self.folder.glob("*.whl")):
            projects.setdefault(normalize(wheel.name.split("-")[0]), []).append(wheel)
        return projects

    def _page(self, path: str) -> tuple[int, str, bytes]:
        parts = [p for p in path.split("/") if p]
        projects = self._wheels()
        if parts == ["simple"]:
            links = "".join(f'<a href="/simple/{name}/">{name}</a>\n' for name in projects)
            return 200, "text/html", f"<!DOCTYPE html><html><body>\n{links}</body></html>".encode()
        if len(parts) == 2 and parts[0] == "simple":
            wheels = projects.get(normalize(parts[1]))
            if not wheels:
                return 404, "text/plain", b"not found"
            links = "".join(
                f'<a href="/files/{html.escape(w.name)}#sha256={hashlib.sha256(w.read_bytes()).hexdigest()}"'
                f"{_requires_python(w)}>{html.escape(w.name)}</a>\n" for w in wheels
            )
            return 200, "text/html", f"<!DOCTYPE html><html><body>\n{links}</body></html>".encode()
        if len(parts) == 2 and parts[0] == "files" and (self.folder / parts[1]).is_file():
            return 200, "application/octet-stream", (self.folder / parts[1]).read_bytes()
        return 404, "text/plain", b"not found"


def _requires_python(wheel: Path) -> str:
    """The ``data-requires-python`` attribute of a wheel's link (PEP 503), from its METADATA, as PyPI serves it."""
    import zipfile

    with zipfile.ZipFile(wheel) as archive:
        name = next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
        for line in archive.read(name).decode("utf-8", errors="replace").splitlines():
            if line.lower().startswith("requires-python:"):
                return f' data-requires-python="{html.escape(line.split(":", 1)[1].strip())}"'
            if not line.strip():
                break
    return ""


def fill_wheelhouse(folder: Path, requirements: Iterable[str], platforms: Iterable[tuple[str, str]],
                    downloads: Path) -> None:
    """Download into ``folder`` the wheels uv picks for each requirement on each (python version, uv platform),
    dependencies excluded; ``downloads`` keeps them between test sessions, checked by their sha256."""
    import subprocess
    import sys
    import tempfile

    from layerkit.core import uv

    folder.mkdir(parents=True, exist_ok=True)
    downloads.mkdir(parents=True, exist_ok=True)
    for python_version, platform in platforms:
        with tempfile.TemporaryDirectory() as work:
            (Path(work) / "in.txt").write_text("\n".join(requirements) + "\n")
            proc = subprocess.run(
                [uv.binary(), "pip", "compile", "in.txt", "--no-deps", "--python", sys.executable,
                 "--python-version", python_version, "--python-platform", platform, "--only-binary", ":all:",
                 "--format", "pylock.toml", "-o", "pylock.toml", "--quiet", "--no-header"],
                cwd=work, capture_output=True, text=True, env=uv.environment(), check=False,
            )
            assert proc.returncode == 0, proc.stderr
            import tomllib

            for package in tomllib.loads((Path(work) / "pylock.toml").read_text())["packages"]:
                for wheel in package["wheels"]:
                    name = wheel["url"].rsplit("/", 1)[1]
                    digest = wheel["hashes"]["sha256"]
                    kept = downloads / name
                    if not kept.exists() or hashlib.sha256(kept.read_bytes()).hexdigest() != digest:
                        with urllib.request.urlopen(wheel["url"], timeout=120) as response:
                            data = response.read()
                        assert hashlib.sha256(data).hexdigest() == digest, name
                        kept.write_bytes(data)
                    shutil.copyfile(kept, folder / name)


def dump(value: object) -> str:
    return json.dumps(value, indent=2)


#: The network namespace of the engine make docker-engine runs with a bridge (docker/engine.sh).
ENGINE_NETNS = "/run/netns/layerkit-docker"


def _mirror_in_engine_namespace(folder: Path, port: int, credentials: tuple[str, str] | None):
    """A copy of the index served inside the engine's network namespace, or None (a user's Docker shares this
    machine's network)."""
    import os
    import subprocess
    import sys
    import time

    if "layerkit-docker" not in os.environ.get("DOCKER_HOST", "") or not Path(ENGINE_NETNS).exists():
        return None
    root = Path(__file__).resolve().parents[1]
    process = subprocess.Popen(["nsenter", f"--net={ENGINE_NETNS}", sys.executable, "-m", "tests.package_index",
                                str(folder), str(port), *(credentials or ())], cwd=root,
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    assert process.stdout is not None
    ready = process.stdout.readline()  # "ready" once it listens
    assert ready.strip() == "ready", "the index mirror did not start in the engine's namespace"
    time.sleep(0.05)
    return process


if __name__ == "__main__":  # the mirror: python -m tests.package_index FOLDER PORT [USER PASSWORD]
    import sys
    import time

    given = sys.argv[3:5]
    index = PackageIndex(Path(sys.argv[1]), (given[0], given[1]) if len(given) == 2 else None, int(sys.argv[2]),
                         mirror=False)
    print("ready", flush=True)
    while True:
        time.sleep(3600)
