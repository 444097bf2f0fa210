"""The Docker side of layer builds: is there a daemon, and a folder ``PythonLayerVersion`` can bundle.

Only ``docker info`` tells whether a daemon answers: the client alone (``docker --version``) is not enough.
"""

from __future__ import annotations

import functools
import shutil
import subprocess
from pathlib import Path

from layerkit.build import materialize
from layerkit.source import LayerSource

DOCKER_INFO_TIMEOUT_S = 20


def docker_available() -> bool:
    """True when a ``docker`` client is on PATH and its daemon answers ``docker info``."""
    executable = shutil.which("docker")
    return executable is not None and _daemon_answers(executable)


@functools.cache
def _daemon_answers(executable: str) -> bool:
    # Cached per client path: a synth asks once per layer, and `docker info` takes a second when it fails.
    try:
        proc = subprocess.run(
            [executable, "info"], capture_output=True, timeout=DOCKER_INFO_TIMEOUT_S, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return proc.returncode == 0


def stage_for_python_layer_version(source: LayerSource, asset_hash: str, cache_dir: Path) -> Path:
    """A folder shaped for ``PythonLayerVersion``: the layer's ``python/`` content beside requirements.txt.

    ``PythonLayerVersion`` copies its whole entry folder into ``python/``; given ``layers/<name>/`` it would
    put the modules at ``python/python/<module>``, one level too deep for Lambda. Staged by content hash,
    in one atomic rename, so concurrent synths share it safely.
    """
    def stage(folder: Path) -> None:
        for path in source.files:
            dest = folder / path.relative_to(source.python_dir)
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, dest)
        if source.requirements_file.exists():
            shutil.copy2(source.requirements_file, folder / "requirements.txt")

    return materialize(cache_dir / "staging" / asset_hash, stage)
