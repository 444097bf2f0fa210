"""A user's own app, outside this repository, with the kit installed the documented way (docs/installing.md):
every mistake of the app is one line, in one synth, through cdk synth, layerkit invoke --synth and the pytest
plugin alike; no traceback unless asked for."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.conftest import ROOT, failure_reports

APP = textwrap.dedent('''
    import layerkit  # first, before aws_cdk

    from aws_cdk import App, Stack
    from aws_cdk import aws_lambda as lambda_

    PY312, PY313 = lambda_.Runtime.PYTHON_3_12, lambda_.Runtime.PYTHON_3_13
    app = App()
    layers = Stack(app, "layers")
    good = layerkit.SharedPythonLayer(layers, "Good", entry="layers/good", runtime=PY312)
    layerkit.SharedPythonLayer(layers, "Old", entry="layers/good", runtime=lambda_.Runtime.PYTHON_3_8,
                               parameter_name="/new-app/old/arn")
    flat = layerkit.SharedPythonLayer(layers, "Flat", entry="layers/flat", runtime=PY312)
    layerkit.SharedPythonLayer(layers, "Twin1", entry="layers/twin", runtime=PY312, parameter_name="/new-app/twin/arn")
    layerkit.SharedPythonLayer(layers, "Twin2", entry="layers/good", runtime=PY312, parameter_name="/new-app/twin/arn")
    layerkit.SharedPythonLayer(layers, "Huge", entry="layers/huge", runtime=PY312)
    api = Stack(app, "api")
    layerkit.PythonFunction(api, "Fine", entry="lambdas/fn", runtime=PY312, layers=[good])
    layerkit.PythonFunction(api, "Lost", entry="lambdas/nope", runtime=PY312)
    layerkit.PythonFunction(api, "NoIndex", entry="lambdas/fn", index="main.py", runtime=PY312)
    layerkit.PythonFunction(api, "NoHandler", entry="lambdas/fn", handler="nope", runtime=PY312)
    layerkit.PythonFunction(api, "Broken", entry="lambdas/broken", runtime=PY312)
    layerkit.PythonFunction(api, "Mismatch", entry="lambdas/fn", runtime=PY313, layers=[good])
    layerkit.PythonFunction(api, "OldFn", entry="lambdas/fn", runtime=lambda_.Runtime.PYTHON_3_8, layers=[good])
    layerkit.PythonFunction(api, "Dotted", entry="lambdas/fn", handler="index.handler", runtime=PY312)
    layerkit.PythonFunction(api, "UsesFlat", entry="lambdas/fn", runtime=PY312, layers=[flat])
    layerkit.check(app)
    app.synth()
''')
#: Each mistake of the app, by what its one line says.
MISTAKES = {
    "layers/Old": "unknown runtime 'python3.8'",
    "layers/Flat": "has no python/ folder",
    "layers/Twin2": "already publishes its layer version in SSM parameter /new-app/twin/arn",
    "layers/Huge": "over Lambda's limit of 250 MB",
    "api/Lost": "entry folder lambdas/nope does not exist",
    "api/NoIndex": "main.py does not exist",
    "api/NoHandler": "defines no 'nope'",
    "api/Broken": "does not parse",
    "api/Mismatch": "not for python3.13",
    "api/OldFn": "unknown runtime 'python3.8'",
    "api/Dotted": "two keywords: index='index.py', handler='handler'",
}
#: Constructs that are right, though they use a broken one: they say nothing.
QUIET = ("api/Fine", "api/UsesFlat")


def write(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)


@pytest.fixture(scope="module")
def new_app(tmp_path_factory, kit_cache) -> tuple[Path, Path, dict[str, str]]:
    """A virtual environment with the kit installed as docs/installing.md says (uv pip install /path/to/layerkit),
    and an app made as `cdk init app --language python` makes one (its cdk.json's recommended flags)."""
    work = tmp_path_factory.mktemp("new-app")
    venv = work / "venv"
    uv = Path(sys.executable).with_name("uv")
    subprocess.run([str(uv), "venv", "--quiet", "--python", sys.executable, str(venv)], check=True)
    installed = subprocess.run([str(uv), "pip", "install", "--quiet", "--python", str(venv / "bin" / "python"),
                                str(ROOT), "pytest"], capture_output=True, text=True, timeout=900)
    assert installed.returncode == 0, installed.stderr[-3000:]
    app = work / "app"
    flags = {k: v for k, v in json.loads((ROOT / "cdk.json").read_text())["context"].items()
             if not k.startswith("layerkit:")}
    write(app, {
        "cdk.json": json.dumps({"app": f"{venv / 'bin' / 'python'} app.py", "context": flags}),
        "app.py": APP,
        "layers/good/python/good.py": "VALUE = 1\n",
        "layers/twin/python/twin.py": "VALUE = 2\n",
        "layers/flat/helpers.py": "VALUE = 3\n",
        "lambdas/fn/index.py": "import good\n\ndef handler(event, context):\n    return good.VALUE\n",
        "lambdas/broken/index.py": "def handler(event, context:\n    return 1\n",
        "tests/test_fn.py": "def test_fine(layerkit_invoke):\n    assert layerkit_invoke('api/Fine').payload == 1\n",
    })
    (app / "layers" / "huge" / "python").mkdir(parents=True)
    with open(app / "layers" / "huge" / "python" / "big.bin", "wb") as big:
        big.truncate(260 * 1024 * 1024)  # sparse: over Lambda's 250 MB, refused before it is read
    env = {**os.environ, "LAYERKIT_CACHE_DIR": str(kit_cache), "PATH": f"{venv / 'bin'}:{os.environ['PATH']}"}
    env.pop("CDK_DEBUG", None)
    env.pop("LAYERKIT_DEBUG", None)
    return venv, app, env


def mistake_lines(output: str) -> dict[str, str]:
    """Each construct of the app with an error, and its line (the CDK's ERROR line, or cdk synth's own)."""
    found = {}
    for line in output.splitlines():
        told = line.removeprefix("layerkit: ")
        if told.startswith(("ERROR ", "[Error at ")) and not told.startswith("ERROR tests/"):  # (pytest's summary)
            for path in MISTAKES:
                if f"{path}:" in told or f"/{path}]" in told:
                    assert path not in found, f"{path} is told twice"
                    found[path] = told
    return found


def assert_one_line_each(output: str) -> None:
    assert "Traceback" not in output, output[-4000:]
    found = mistake_lines(output)
    assert sorted(found) == sorted(MISTAKES), output[-4000:]
    for construct, line in found.items():
        assert MISTAKES[construct] in line, line
    # No cascade: nothing of the constructs that are right, nor of the references a broken layer would need.
    assert not [line for line in output.splitlines() if any(path in line for path in QUIET)]
    assert "cross-stack" not in output
    assert "Docker" not in output  # not asked for, not chosen: not a word of it


def test_every_mistake_of_an_app_is_one_line_in_one_synth(new_app):
    venv, app, env = new_app
    synth = subprocess.run([str(ROOT / "node_modules" / ".bin" / "cdk"), "synth", "--quiet"], cwd=app, env=env,
                           capture_output=True, text=True, timeout=900)
    assert synth.returncode != 0
    assert_one_line_each(synth.stdout + synth.stderr)
    # A function that uses a broken layer references nothing of the layers stack (no export for a stand-in).
    template = (app / "cdk.out" / "api.template.json").read_text()
    assert "Fn::ImportValue" not in template
    assert "Fn::GetStackOutput" not in template
    # The same through layerkit invoke --synth, which shows the synth's lines as they come.
    invoke = subprocess.run([str(venv / "bin" / "layerkit"), "invoke", "--synth", "api/Fine"], cwd=app, env=env,
                            capture_output=True, text=True, timeout=900)
    assert invoke.returncode == 1
    assert_one_line_each(invoke.stderr)
    assert invoke.stderr.splitlines()[-1].startswith("layerkit: error: the synth of ")
    # And through the pytest plugin: the test that invokes fails with each mistake on its line.
    tests = subprocess.run([str(venv / "bin" / "python"), "-m", "pytest", "-q", "-p", "no:cacheprovider"], cwd=app,
                           env=env, capture_output=True, text=True, timeout=900)
    assert tests.returncode == 1
    assert_one_line_each(failure_reports(tests.stdout))


def test_cdk_synth_debug_shows_the_traceback(new_app):
    _, app, env = new_app
    synth = subprocess.run([str(ROOT / "node_modules" / ".bin" / "cdk"), "synth", "--quiet", "--debug"], cwd=app,
                           env=env, capture_output=True, text=True, timeout=900)
    assert synth.returncode != 0
    assert "Traceback" in synth.stdout + synth.stderr
