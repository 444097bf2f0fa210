"""Anything a user can pass to layerkit ends with one line and a non-zero exit, never a traceback."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest


def layerkit(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "layerkit.cli", *args], capture_output=True, text=True,
                          timeout=120)


def one_line_error(result: subprocess.CompletedProcess, code: int = 1) -> str:
    assert result.returncode == code, result.stderr
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    if code == 1:  # progress lines may come first; the error is one line, and the last
        assert [line for line in lines if "error" in line] == lines[-1:], lines
    return lines[-1]


def test_missing_layer_folder(tmp_path):
    missing = tmp_path / "nope"
    message = one_line_error(layerkit("build", str(missing), "--runtime", "python3.12", "--arch", "x86_64"))
    assert message == f"layerkit: error: layer folder {missing} does not exist; create it with a python/ folder"


@pytest.mark.parametrize(("flag", "value"), [("--arch", "aarch64"), ("--runtime", "python3.9")])
def test_bad_choices_are_usage_errors(tmp_path, flag, value):
    args = {"--runtime": "python3.12", "--arch": "x86_64", flag: value}
    message = one_line_error(layerkit("build", str(tmp_path), *[x for kv in args.items() for x in kv]), code=2)
    assert f"invalid choice: '{value}'" in message


def test_missing_assembly(tmp_path):
    message = one_line_error(layerkit("invoke", "--assembly", str(tmp_path), "--list"))
    assert message == (f"layerkit: error: {tmp_path} is not a cloud assembly (no manifest.json); "
                       "run 'npx cdk synth' first")


def test_corrupt_assembly(tmp_path):
    (tmp_path / "manifest.json").write_text('{"artifacts": {')
    message = one_line_error(layerkit("describe", "--assembly", str(tmp_path)))
    assert "manifest.json is not valid JSON" in message
    assert "the cloud assembly is corrupt, synthesize again" in message


def test_assembly_with_a_missing_template(tmp_path):
    (tmp_path / "manifest.json").write_text(
        '{"artifacts": {"s": {"type": "aws:cloudformation:stack", "properties": {"templateFile": "s.json"}}}}')
    message = one_line_error(layerkit("invoke", "--assembly", str(tmp_path), "--list"))
    assert message.endswith("s.json is missing; the cloud assembly is incomplete, synthesize again")


def test_invoke_without_a_function_says_how_to_list_them(tmp_path):
    (tmp_path / "manifest.json").write_text('{"artifacts": {}}')
    message = one_line_error(layerkit("invoke", "--assembly", str(tmp_path)))
    assert "holds no stack" in message


def test_debug_shows_the_traceback(tmp_path):
    result = layerkit("--debug", "build", str(tmp_path / "nope"), "--runtime", "python3.12", "--arch", "x86_64")
    assert result.returncode == 1
    assert "Traceback" in result.stderr
    assert "LayerSourceError: layer folder" in result.stderr


def test_unwritable_output_is_one_line(tmp_path):
    layer = tmp_path / "layer" / "python"
    layer.mkdir(parents=True)
    (layer / "m.py").write_text("")
    blocker = tmp_path / "file"
    blocker.write_text("")
    result = layerkit("build", str(layer.parent), "--runtime", "python3.12", "--arch", "x86_64",
                      "--out", str(blocker / "layer.zip"), "--cache-dir", str(tmp_path / "cache"))
    message = one_line_error(result)
    assert message.startswith("layerkit: error: ")
    assert str(blocker) in message


def test_no_command_is_a_usage_error():
    result = layerkit()
    assert result.returncode == 2
    assert "usage: layerkit" in result.stderr


def test_describe_lists_stacks_layers_and_functions(example):
    result = layerkit("describe", "--assembly", str(example.app.outdir), "--json")
    assert result.returncode == 0, result.stderr
    described = json.loads(result.stdout)
    assert [s["name"] for s in described["stacks"]] == [
        "lambda-layers-example", "lambda-layers-example-order-total", "lambda-layers-example-text-stats"]
    layers = {layer["name"]: layer for layer in described["layers"]}
    assert layers.keys() == {"my_layer", "another_layer"}
    assert layers["my_layer"]["unzipped_bytes"] > layers["my_layer"]["zipped_bytes"] > 1_000_000
    for function in described["functions"]:
        assert [(u["name"], u["via"]) for u in function["layers"]] == [("my_layer", "ssm"), ("another_layer", "ssm")]
    text = layerkit("describe", "--assembly", str(example.app.outdir)).stdout
    assert "function lambda-layers-example-order-total/Function: handler.handler python3.12 x86_64 256 MB 10 s" in text


def test_the_installable_kit_holds_every_subpackage():
    """pip install . ships exactly the packages pyproject.toml lists: a new subpackage must be listed there."""
    import tomllib

    from tests.conftest import ROOT

    listed = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]
    found = sorted(".".join(init.parent.relative_to(ROOT).parts) for init in (ROOT / "layerkit").rglob("__init__.py"))
    assert sorted(listed) == found
