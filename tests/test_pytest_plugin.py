"""The pytest plugin, as a user's project meets it: a test of their own, their app synthesized by the CDK CLI once per
session, a layerkit.check error that fails the run, an assembly given on the command line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

from tests.conftest import ROOT, failure_reports

APP = textwrap.dedent('''
    import layerkit
    from aws_cdk import App, Duration, Stack
    from aws_cdk import aws_lambda as lambda_
    from layerkit import PythonFunction, SharedPythonLayer

    app = App()
    stack = Stack(app, "shop")
    layer = SharedPythonLayer(stack, "Prices", entry="layers/prices", runtime=lambda_.Runtime.PYTHON_3_12,
                              bytecode=False)
    PythonFunction(stack, "Total", entry="lambdas/total", runtime=lambda_.Runtime.PYTHON_3_12, layers=[layer],
                   timeout=Duration.seconds(5), bytecode=False)
    layerkit.check(app)
    app.synth()
''')
USER_TEST = textwrap.dedent('''
    def test_total(layerkit_invoke):
        result = layerkit_invoke("shop/Total", {"items": [2, 3]})
        assert result.error is None
        assert result.payload == {"total": 5.25}
        assert result.logs == ["pricing 2 items"]
        assert result.report["memory_size_mb"] == 128

    def test_an_error_is_lambdas(layerkit_invoke):
        result = layerkit_invoke("shop/Total", {"items": "none"})
        assert result.error[0] == "TypeError"
        assert result.payload["errorType"] == "TypeError"

    def test_warm(layerkit_invoke):
        assert layerkit_invoke("shop/Total", {"items": []}).report["init_duration_ms"] is None
''')


HANDLER = textwrap.dedent('''
    import prices

    def handler(event, context):
        print("pricing", len(event["items"]), "items")
        return {"total": prices.total(event["items"])}
''')
PRICES = "FEE = 0.25\n\ndef total(items):\n    return sum(items) + FEE\n"


def project(root: Path) -> Path:
    files = {
        "app.py": APP, "cdk.json": json.dumps({"app": f"{sys.executable} app.py",
                                               "context": {"layerkit:builder": "local"}}),
        "layers/prices/python/prices.py": PRICES, "lambdas/total/index.py": HANDLER, "tests/test_total.py": USER_TEST,
    }
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    return root


def run_pytest(folder: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PATH": f"{ROOT / 'node_modules' / '.bin'}:{os.environ['PATH']}", "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--rootdir", str(folder),
                           str(folder / "tests"), *args], cwd=folder, capture_output=True, text=True, env=env,
                          timeout=900)


def test_a_users_own_tests_invoke_their_function_with_its_layers(tmp_path):
    folder = project(tmp_path / "shop")
    result = run_pytest(folder)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert "3 passed" in result.stdout
    assert not (folder / "cdk.out").exists(), "the session's synth went into the project's own cdk.out"


def test_a_given_assembly_is_used_as_it_is(tmp_path):
    folder = project(tmp_path / "shop")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "CDK_OUTDIR": str(tmp_path / "given")}
    subprocess.run([sys.executable, "app.py"], cwd=folder, env=env, check=True, capture_output=True)
    (folder / "cdk.json").write_text("{}")  # no app to synthesize: the given assembly must be what is used
    result = run_pytest(folder, "--layerkit-assembly", str(tmp_path / "given"))
    assert result.returncode == 0, result.stdout[-3000:]


def test_a_layerkit_check_error_fails_the_tests_that_invoke(tmp_path):
    # A function whose layer nests its module one level too deep: layerkit.check fails the synth.
    folder = project(tmp_path / "shop")
    deep = folder / "layers" / "prices" / "python" / "prices.py"
    (deep.parent / "python").mkdir()
    deep.rename(deep.parent / "python" / "prices.py")
    result = run_pytest(folder)
    assert result.returncode == 1
    assert "layerkit: the synth of " in result.stdout
    assert "nests its modules one level too deep" in result.stdout
    assert "Traceback" not in result.stdout
    # The session's assembly fixture fails: pytest reports each of the three tests that use it as an error.
    assert "3 errors" in result.stdout, result.stdout[-3000:]
    assert "passed" not in result.stdout.splitlines()[-1]


BAD_EVENTS = textwrap.dedent('''
    import pytest

    @pytest.mark.parametrize("event", [{"total": float("nan")}, {"items": {1, 2}}, b'{"a": "\\xff"}',
                                       '{"a": "\\ud800"}'], ids=["nan", "set", "latin-1", "surrogate"])
    def test_bad(layerkit_invoke, event):
        layerkit_invoke("shop/Total", event)
''')


def test_an_event_lambda_could_not_take_fails_the_test_with_the_kits_message(tmp_path):
    folder = project(tmp_path / "shop")
    (folder / "tests" / "test_total.py").write_text(BAD_EVENTS)
    result = run_pytest(folder)
    assert result.returncode == 1, result.stdout[-3000:]
    assert "4 failed" in result.stdout
    for message in (
        "layerkit: the event holds NaN or Infinity, numbers JSON cannot write; use None or a string",
        "layerkit: the event cannot be written as JSON (Object of type set is not JSON serializable); use dicts, "
        "lists, strings, numbers, booleans and None",
        "layerkit: the event is not UTF-8 text; an event must be a JSON document in UTF-8",
        "layerkit: the event is not UTF-8 text (surrogates not allowed at character 7); an event is a JSON document "
        "in UTF-8",
    ):
        assert failure_reports(result.stdout).count(message) == 1, message
    assert "Traceback" not in result.stdout
    assert "During handling" not in result.stdout
