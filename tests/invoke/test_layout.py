"""/var/task and /opt as Lambda lays them out (layerkit.invoke.layout): a later layer wins, links stay links, nothing
written through one, and an edited asset never answered with the old code."""

from __future__ import annotations

import json
import stat
from pathlib import Path

from aws_cdk import App, AssetHashType, Stack
from aws_cdk import aws_lambda as lambda_

from layerkit import PythonFunction, SharedPythonLayer
from layerkit.assembly import Assembly
from layerkit.invoke import invoke_function
from tests.conftest import app_context
from tests.helpers import cli, write_file
from tests.hostile_assembly import WALK_HANDLER, _zip, assert_one_line, copy_of, replace_layer_asset
from tests.invoke.apps import invoke_layers, invoke_probe


def test_the_later_layer_wins_for_the_same_path(layers_app):
    assert invoke_layers(layers_app, "user", {})[0].payload["x"] == "second"
    assert invoke_layers(layers_app, "reversed", {})[0].payload["x"] == "first"


# -- 7. never stale ----------------------------------------------------------------------------------------
def test_an_edit_that_keeps_a_files_size_is_never_answered_with_the_old_code(probe_sandbox_app, tmp_path, kit_cache):
    layer = write_file(tmp_path / "layer" / "python" / "which.py", "WHO = 'one'\n").parents[1]
    code = write_file(tmp_path / "code" / "index.py",
                      "import which\n\ndef handler(e, c):\n    return which.WHO\n").parent

    def synth(outdir: Path) -> Assembly:
        cdk_app = App(outdir=str(outdir), context=app_context())
        stack = Stack(cdk_app, "S")
        # A fixed asset hash, as some apps set one: the asset's folder keeps its name when its content changes.
        fixed = lambda_.LayerVersion(stack, "Fixed", code=lambda_.Code.from_asset(
            str(layer), asset_hash="fixed", asset_hash_type=AssetHashType.CUSTOM))
        lambda_.Function(stack, "Fn", runtime=lambda_.Runtime.PYTHON_3_12, handler="index.handler",
                         code=lambda_.Code.from_asset(str(code)), layers=[fixed])
        cdk_app.synth()
        return Assembly.load(outdir)

    (first,) = invoke_function(synth(tmp_path / "first").function("S/Fn"), [b"{}"], backend="sandbox")
    (layer / "python" / "which.py").write_text("WHO = 'two'\n")  # the same size
    (second,) = invoke_function(synth(tmp_path / "second").function("S/Fn"), [b"{}"], backend="sandbox")
    assert (first.payload, second.payload) == ("one", "two")


def test_a_damaged_runtime_folder_is_made_again(probe_sandbox_app, kit_cache):
    invoke_probe(probe_sandbox_app, "Probe", {})
    runtime = next((kit_cache / "runtime").glob("awslambdaric-*python3.12*")) / "root"
    (runtime / "awslambdaric" / "bootstrap.py").unlink()
    (result,) = invoke_probe(probe_sandbox_app, "Probe", {})
    assert result.payload == {"version": "one"}


def test_a_zip_whose_file_lies_under_its_own_link_is_refused_without_writing_through_it(clean, tmp_path, host_secret):
    out = copy_of(clean, tmp_path)
    replace_layer_asset(out, lambda path: _zip(path, [
        ("python/d", str(host_secret).encode(), stat.S_IFLNK | 0o777),
        ("python/d/evil.txt", b"written through the link", stat.S_IFREG | 0o644)]))
    assert_one_line(cli("invoke", "S/Fn", "--backend", "sandbox", "--assembly", str(out)),
                    "lies under 'python/d', which is a link there")
    assert sorted(p.name for p in host_secret.iterdir()) == ["credentials"]


def test_a_zip_layer_keeps_its_links_as_links_inside_the_sandbox(clean, tmp_path):
    """A link in a zip is laid out as a link (as Lambda extracts it), never followed on this machine: inside the
    sandbox it leads nowhere of this machine's."""
    out = copy_of(clean, tmp_path)
    replace_layer_asset(out, lambda path: _zip(path, [
        ("python/helper.py", b"VALUE = 2\n", stat.S_IFREG | 0o644),
        ("python/libfoo.so", b"libfoo.so.1", stat.S_IFLNK | 0o777),
        ("python/libfoo.so.1", b"\x7fELF not really", stat.S_IFREG | 0o755),
        ("python/root-link", b"/root", stat.S_IFLNK | 0o777)]))
    result = cli("invoke", "S/Fn", "--backend", "sandbox", "--assembly", str(out))
    assert result.returncode == 0, result.stderr
    seen = json.loads(result.stdout)
    assert seen["/opt/python/libfoo.so"].startswith("\x7fELF")
    assert not any(path.startswith("/opt/python/root-link/") for path in seen)


def test_two_folder_layers_never_write_through_the_first_ones_link(tmp_path, kit_cache, host_secret):
    """Layers given as folders (--layer NAME=FOLDER): the first's python/ is a link to a folder of this machine,
    the second ships python/evil.txt. Merging them into /opt must not write into that folder."""

    arns = [f"arn:aws:lambda:eu-west-1:111122223333:layer:{name}:1" for name in ("first", "second")]
    write_file(tmp_path / "fn" / "index.py", WALK_HANDLER)
    outdir = tmp_path / "cdk.out"
    app = App(outdir=str(outdir), context=app_context())
    stack = Stack(app, "S")
    layers = [SharedPythonLayer.from_layer_version_arn(stack, f"L{i}", arn, runtime=lambda_.Runtime.PYTHON_3_12)
              for i, arn in enumerate(arns)]
    PythonFunction(stack, "Fn", entry=tmp_path / "fn", runtime=lambda_.Runtime.PYTHON_3_12, layers=layers,
                   bytecode=False)
    app.synth()
    first, second = tmp_path / "first", tmp_path / "second"
    first.mkdir()
    (first / "python").symlink_to(host_secret)
    write_file(second / "python" / "evil.txt", "written through the link\n")
    result = cli("invoke", "S/Fn", "--backend", "sandbox", "--assembly", str(outdir),
                 "--layer", f"{arns[0]}={first}", "--layer", f"{arns[1]}={second}")
    assert_one_line(result, "python is a link to", "outside the asset")
    assert sorted(p.name for p in host_secret.iterdir()) == ["credentials"]
