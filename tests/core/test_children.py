"""Child processes (layerkit.core.children): the kit runs where the platform lacks fcntl and prctl."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from layerkit.assemble.local_build import build_layer
from layerkit.core.targets import Target
from tests.conftest import LAYERS, make_wheel

WITHOUT_FCNTL_AND_PRCTL = """
import ctypes, sys
sys.modules["fcntl"] = None  # `import fcntl` fails, as on Windows


class _NoPrctl(ctypes.CDLL):  # a C library without prctl, as on macOS and Windows
    def __getattr__(self, name):
        if name == "prctl":
            raise AttributeError(name)
        return super().__getattr__(name)


ctypes.CDLL = _NoPrctl
sys.path.insert(0, sys.argv[1])
import json
import layerkit
from pathlib import Path
from aws_cdk import App, Stack
from aws_cdk import aws_lambda as lambda_
from layerkit import PythonFunction, SharedPythonLayer
from layerkit.assemble.local_build import build_layer
from layerkit.core.targets import Target

layer, cache, outdir = Path(sys.argv[2]), Path(sys.argv[3]), sys.argv[4]
builds = [build_layer(layer, Target("python3.12", "x86_64"), cache_dir=cache, report=lambda _: None) for _ in "ab"]
app = App(outdir=outdir, context={"layerkit:builder": "local"})
stack = Stack(app, "S")
shared = SharedPythonLayer(stack, "L", entry=layer, runtime=lambda_.Runtime.PYTHON_3_12)
PythonFunction(stack, "F", entry=sys.argv[5], runtime=lambda_.Runtime.PYTHON_3_12, layers=[shared])
app.synth()
from layerkit.core import children
print(json.dumps({"caches": [b.cache for b in builds], "packages": builds[0].packages, "sha256": builds[0].sha256,
                  "fcntl": "fcntl" in sys.modules and sys.modules["fcntl"] is not None,
                  "prctl": children._linux_prctl() is not None}))
"""


def test_the_kit_runs_where_there_is_no_fcntl_and_no_prctl(tmp_path):
    """What macOS and Windows lack, taken away on Linux: the build, its cache and a synth still work."""
    layer = tmp_path / "portable layer"
    (layer / "python").mkdir(parents=True)
    (layer / "python" / "portable.py").write_text("import kit_dep\n")
    (layer / "requirements.txt").write_text("./wheels/kit_dep-1.0-py3-none-any.whl\n")
    make_wheel(layer / "wheels", "kit-dep", {"kit_dep.py": "X = 1\n"})
    function = tmp_path / "fn"
    function.mkdir()
    (function / "index.py").write_text("import portable\n\ndef handler(event, context):\n    return 1\n")
    env = {**os.environ, "LAYERKIT_CACHE_DIR": str(tmp_path / "cache")}
    proc = subprocess.run([sys.executable, "-c", WITHOUT_FCNTL_AND_PRCTL, str(LAYERS.parent), str(layer),
                           str(tmp_path / "cache"), str(tmp_path / "cdk.out"), str(function)],
                          capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout.splitlines()[-1])
    assert (result["fcntl"], result["prctl"]) == (False, False)
    assert result["caches"] == ["miss", "hit"]
    assert result["packages"] == ["kit-dep==1.0"]
    # The same bytes as a build where both exist.
    assert build_layer(layer, Target("python3.12", "x86_64"), cache_dir=tmp_path / "other",
                       report=lambda _: None).sha256 == result["sha256"]
