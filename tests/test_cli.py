"""The layerkit command (layerkit.cli): one line per mistake, exit 1 or 2, help with examples, --debug for the
traceback, and the JSON a script reads."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import zipfile

import pytest

from tests.conftest import LAYERS
from tests.helpers import cli, layerkit_build


def one_line_error(result: subprocess.CompletedProcess, code: int = 1) -> str:
    assert result.returncode == code, result.stderr
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    if code == 1:  # progress lines may come first; the error is one line, and the last
        assert [line for line in lines if "error" in line] == lines[-1:], lines
    return lines[-1]


# -- the conventions of the tools it sits beside -------------------------------------------------------------
COMMANDS = ["build", "describe", "check", "invoke", "check-upgrade", "sam-template"]


def test_unknown_runtime_on_the_command_line_is_a_usage_error(tmp_path):
    result = cli("build", str(tmp_path), "--runtime", "python3.9", "--arch", "x86_64")
    assert result.returncode == 2
    assert "invalid choice: 'python3.9'" in result.stderr


def test_cli_json_reports_what_a_user_needs(tmp_path):
    proc = layerkit_build(LAYERS / "another_layer", tmp_path / "cache", tmp_path / "layer.zip")
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    result = json.loads(out)
    assert {"zip", "sha256", "zipped_bytes", "unzipped_bytes", "cache", "builder"} <= result.keys()
    assert result["zip"] == str(tmp_path / "layer.zip")
    assert result["zipped_bytes"] == (tmp_path / "layer.zip").stat().st_size
    assert (result["cache"], result["builder"]) == ("miss", "local")
    assert hashlib.sha256((tmp_path / "layer.zip").read_bytes()).hexdigest() == result["sha256"]


def test_missing_layer_folder(tmp_path):
    missing = tmp_path / "nope"
    message = one_line_error(cli("build", str(missing), "--runtime", "python3.12", "--arch", "x86_64"))
    assert message == f"layerkit: error: layer folder {missing} does not exist; create it with a python/ folder"


@pytest.mark.parametrize(("flag", "value"), [("--arch", "aarch64"), ("--runtime", "python3.9")])
def test_bad_choices_are_usage_errors(tmp_path, flag, value):
    args = {"--runtime": "python3.12", "--arch": "x86_64", flag: value}
    message = one_line_error(cli("build", str(tmp_path), *[x for kv in args.items() for x in kv]), code=2)
    assert f"invalid choice: '{value}'" in message


def test_missing_assembly(tmp_path):
    message = one_line_error(cli("invoke", "--assembly", str(tmp_path), "--list"))
    assert message == (f"layerkit: error: {tmp_path} is not a cloud assembly (no manifest.json); "
                       "run 'npx cdk synth' first")


def test_corrupt_assembly(tmp_path):
    (tmp_path / "manifest.json").write_text('{"artifacts": {')
    message = one_line_error(cli("describe", "--assembly", str(tmp_path)))
    assert "manifest.json is not valid JSON" in message
    assert "the cloud assembly is corrupt, synthesize again" in message


def test_assembly_with_a_missing_template(tmp_path):
    (tmp_path / "manifest.json").write_text(
        '{"artifacts": {"s": {"type": "aws:cloudformation:stack", "properties": {"templateFile": "s.json"}}}}')
    message = one_line_error(cli("invoke", "--assembly", str(tmp_path), "--list"))
    assert message.endswith("s.json is missing; the cloud assembly is incomplete, synthesize again")


def test_an_assembly_without_stacks_is_one_line(tmp_path):
    (tmp_path / "manifest.json").write_text('{"artifacts": {}}')
    message = one_line_error(cli("invoke", "--assembly", str(tmp_path)))
    assert "holds no stack" in message


def test_debug_shows_the_traceback(tmp_path):
    result = cli("--debug", "build", str(tmp_path / "nope"), "--runtime", "python3.12", "--arch", "x86_64")
    assert result.returncode == 1
    assert "Traceback" in result.stderr
    assert "LayerSourceError: layer folder" in result.stderr


def test_unwritable_output_is_one_line(tmp_path):
    layer = tmp_path / "layer" / "python"
    layer.mkdir(parents=True)
    (layer / "m.py").write_text("")
    blocker = tmp_path / "file"
    blocker.write_text("")
    result = cli("build", str(layer.parent), "--runtime", "python3.12", "--arch", "x86_64",
                      "--out", str(blocker / "layer.zip"), "--cache-dir", str(tmp_path / "cache"))
    message = one_line_error(result)
    assert message.startswith("layerkit: error: ")
    assert str(blocker) in message


@pytest.mark.parametrize("command", ["build", "sam-template"])
def test_an_output_file_that_is_a_folder_is_said_before_any_work(example, tmp_path, command):
    folder = tmp_path / "out"
    folder.mkdir()
    arguments = {
        "build": ["build", str(LAYERS / "my_layer"), "--runtime", "python3.12", "--arch", "x86_64", "--out",
                  str(folder), "--cache-dir", str(tmp_path / "cache")],
        "sam-template": ["sam-template", "lambda-layers-example-order-total", "--assembly",
                         str(example.app.outdir), "--output", str(folder)],
    }[command]
    result = cli(*arguments)
    message = one_line_error(result, code=2)
    option = "--out" if command == "build" else "--output"
    assert f"{option} {folder} is a folder; give the path of the file to write, e.g. {option} {folder}/" in message
    assert not (tmp_path / "cache").exists()  # nothing built for an answer that could not be written


def test_layers_from_a_path_that_is_no_assembly_is_one_line(example, tmp_path):
    result = cli("invoke", "lambda-layers-example-order-total/Function", "--assembly", str(example.app.outdir),
                 "--event", str(LAYERS.parent / "lambdas" / "order_total" / "events" / "order.json"),
                 "--layers-from", str(tmp_path / "nope"))
    message = one_line_error(result)
    assert message == f"layerkit: error: {tmp_path / 'nope'} is not a cloud assembly (no manifest.json); run " \
                      "'npx cdk synth' first"


def test_no_command_is_a_usage_error():
    result = cli()
    assert result.returncode == 2
    assert "usage: layerkit" in result.stderr


def test_describe_lists_stacks_layers_and_functions(example):
    result = cli("describe", "--assembly", str(example.app.outdir), "--json")
    assert result.returncode == 0, result.stderr
    described = json.loads(result.stdout)
    assert [s["name"] for s in described["stacks"]] == [
        "lambda-layers-example", "lambda-layers-example-order-total", "lambda-layers-example-text-stats"]
    layers = {layer["name"]: layer for layer in described["layers"]}
    assert layers.keys() == {"my_layer", "another_layer"}
    assert layers["my_layer"]["unzipped_bytes"] > layers["my_layer"]["zipped_bytes"] > 1_000_000
    for function in described["functions"]:
        assert [(u["name"], u["via"]) for u in function["layers"]] == [("my_layer", "ssm"), ("another_layer", "ssm")]
    text = cli("describe", "--assembly", str(example.app.outdir)).stdout
    assert "function lambda-layers-example-order-total/Function: handler.handler python3.12 x86_64 256 MB 10 s" in text


def test_the_installable_kit_holds_every_subpackage():
    """pip install . ships exactly the packages pyproject.toml lists: a new subpackage must be listed there."""
    import tomllib

    from tests.conftest import ROOT

    listed = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]
    found = sorted(".".join(init.parent.relative_to(ROOT).parts) for init in (ROOT / "layerkit").rglob("__init__.py"))
    assert sorted(listed) == found


@pytest.mark.parametrize("command", [None, *COMMANDS])
def test_every_command_has_plain_text_help_with_examples(command):
    result = cli(*([command] if command else []), "--help")
    assert result.returncode == 0, result.stderr
    assert "examples:\n  layerkit " in result.stdout
    assert "``" not in result.stdout
    assert ":mod:" not in result.stdout
    from layerkit.cli import build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    parsers = [parser] if command is None else [sub.choices[command]]
    for each in parsers:
        undocumented = [a.option_strings or a.dest for a in each._actions
                        if a.help is None and a.dest not in ("help", "command")]
        assert not undocumented, f"options without help: {undocumented}"


@pytest.mark.parametrize("args", [
    ["invoke", "some-stack/Fn", "--env", "FOO"],
    ["invoke", "some-stack/Fn", "--repeat", "0"],
    ["invoke", "some-stack/Fn", "--timeout", "-1"],
    ["invoke", "some-stack/Fn", "--layer", "no-equals-sign"],
    ["check-upgrade", "only-one-assembly"],
    ["build", "layers/my_layer", "--runtime", "python3.12", "--arch", "x86_64", "--workers", "0"],
    ["build", "layers/my_layer", "--runtime", "python3.12", "--arch", "x86_64", "--layer", "--function"],
], ids=["env-without-value", "repeat-0", "negative-timeout", "layer-without-path", "one-assembly", "workers-0",
        "layer-and-function"])
def test_a_command_line_that_cannot_run_as_written_exits_2_with_its_usage(args, tmp_path):
    from tests.conftest import ROOT

    result = subprocess.run([sys.executable, "-m", "layerkit.cli", *args], capture_output=True, text=True,
                            timeout=120, cwd=ROOT)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert result.stderr.startswith("usage: layerkit ")
    assert ": error: " in result.stderr.strip().splitlines()[-1]


def test_invoke_without_a_function_is_a_usage_error(example):
    result = cli("invoke", "--assembly", str(example.app.outdir))
    assert result.returncode == 2
    assert "'layerkit invoke --list' lists them" in result.stderr


def test_build_builds_a_function_folder_detected_or_named(tmp_path):

    from tests.conftest import ROOT

    order_total = ROOT / "lambdas" / "order_total"
    detected = cli("build", str(order_total), "--runtime", "python3.12", "--arch", "x86_64", "--json",
                        "--cache-dir", str(tmp_path))
    assert detected.returncode == 0, detected.stderr
    assert "building it as a function" in detected.stderr
    built = json.loads(detected.stdout)
    assert built["kind"] == "function"
    with zipfile.ZipFile(built["zip"]) as archive:
        names = archive.namelist()
    assert "handler.py" in names  # the code at the zip's root, its own dependency beside it
    assert any(n.startswith("dateutil/") for n in names)
    assert not any(n.startswith(("python/", "events/")) for n in names)
    named = cli("build", str(order_total), "--function", "--runtime", "python3.12", "--arch", "x86_64",
                     "--json", "--cache-dir", str(tmp_path))
    assert json.loads(named.stdout)["asset_hash"] == built["asset_hash"]
    as_layer = cli("build", str(order_total), "--layer", "--runtime", "python3.12", "--arch", "x86_64",
                        "--cache-dir", str(tmp_path))
    assert "has no python/ folder" in one_line_error(as_layer)


def test_the_fix_for_a_package_without_a_wheel_is_typed_in_the_same_command(lambda_images, tmp_path):
    layer = tmp_path / "sdist_only"
    (layer / "python").mkdir(parents=True)
    (layer / "python" / "uses_docopt.py").write_text("import docopt\n")
    (layer / "requirements.txt").write_text("docopt==0.6.2\n")  # published as a source archive only
    common = [str(layer), "--runtime", "python3.13", "--arch", "x86_64", "--cache-dir", str(tmp_path / "cache")]
    message = one_line_error(cli("build", *common))
    assert "docopt has no wheel for python3.13" in message
    assert "in the Lambda build image: --builder docker" in message  # the command's own option, not a construct's
    assert "builder='docker'" not in message
    assert "-c layerkit:" not in message
    fixed = cli("build", *common, "--builder", "docker", "--json", "--out", str(tmp_path / "layer.zip"))
    assert fixed.returncode == 0, fixed.stderr
    built = json.loads(fixed.stdout)
    assert (built["builder"], built["packages"]) == ("docker", ["docopt==0.6.2"])

    with zipfile.ZipFile(tmp_path / "layer.zip") as archive:
        assert {"python/docopt.py", "python/uses_docopt.py"} <= set(archive.namelist())


def test_a_fix_on_the_command_line_is_one_of_its_options_not_a_constructs(tmp_path):
    """The same mistakes the constructs tell with their keywords, told by layerkit build with its own options."""
    folder = tmp_path / "fn"
    (folder / "certs").mkdir(parents=True)
    (folder / "index.py").write_text("def handler(e, c):\n    return 1\n")
    (folder / "certs" / "settings.ini").write_text(
        "[default]\naws_secret_access_key = q3VtYq2ZJxL1u9kT0pSe/8rNc4fHd7aB+mXgY5vE\n")
    message = one_line_error(cli("build", str(folder), "--runtime", "python3.12", "--arch", "x86_64",
                                 "--cache-dir", str(tmp_path / "cache")))
    assert "exclude the file (--exclude PATTERN)" in message
    assert "asset_excludes" not in message


def test_a_file_given_where_a_folder_is_expected_says_so(tmp_path):
    requirements = tmp_path / "layer" / "requirements.txt"
    requirements.parent.mkdir()
    requirements.write_text("six==1.17.0\n")
    message = one_line_error(cli("build", str(requirements), "--runtime", "python3.12", "--arch", "x86_64"))
    assert f"{requirements} is a file, and a layer is a folder: give the folder that holds python/" in message


def test_describe_counts_against_lambdas_250_mb_as_lambda_does(example):
    text = cli("describe", "--assembly", str(example.app.outdir)).stdout
    assert "(Lambda allows 250 MB)" in text
    assert "262.1" not in text
