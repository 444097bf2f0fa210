"""A function made ready to invoke (layerkit.invoke.preparation): unknown names, folders changed since the synth,
variables only CloudFormation fills."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.helpers import cli
from tests.hostile_assembly import copy_of
from tests.invoke.apps import cli_layers, fn_id


def test_a_variable_known_only_at_deploy_time_is_named_and_can_be_set(layers_app):
    event = '{"action": "probe", "env": ["STACK_ID", "GREETING"]}'
    unset = cli_layers(layers_app, fn_id(layers_app, "user"), "--event", "-", stdin=event)
    assert unset.returncode == 0, unset.stderr
    assert json.loads(unset.stdout)["env"] == {"STACK_ID": None, "GREETING": "hello"}
    assert "layerkit: warning: no local value for STACK_ID: CloudFormation sets it at deploy time" in unset.stderr
    assert "pass --env STACK_ID=... to set it locally" in unset.stderr
    given = cli_layers(layers_app, fn_id(layers_app, "user"), "--event", "-", "--env", "STACK_ID=local", stdin=event)
    assert json.loads(given.stdout)["env"] == {"STACK_ID": "local", "GREETING": "hello"}
    assert "warning" not in given.stderr


def test_an_unknown_function_names_the_known_ones(layers_app):
    result = cli_layers(layers_app, "nope/Function")
    assert result.returncode == 1
    assert "no function 'nope/Function'" in result.stderr
    assert fn_id(layers_app, "user") in result.stderr


def test_invoke_says_when_a_folder_changed_since_the_synth_and_synth_runs_the_new_code(small_app):
    folder, env = small_app

    def invoke_here(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "layerkit.cli", "invoke", "S/Fn", "--backend", "sandbox", *args],
                              cwd=folder, capture_output=True, text=True, env=env, timeout=600)

    first = invoke_here("--synth")
    assert first.returncode == 0, first.stderr
    assert json.loads(first.stdout) == "one"
    assert "changed since" not in first.stderr
    (folder / "layer" / "python" / "words.py").write_text("WORD = 'two'\n")
    stale = invoke_here()
    assert stale.returncode == 0, stale.stderr
    assert json.loads(stale.stdout) == "one"
    warnings = [line for line in stale.stderr.splitlines() if "changed since" in line]
    assert warnings == [f"layerkit: warning: {folder / 'layer'} changed since cdk.out was synthesized: this invoke "
                        "runs the synthesized code; pass --synth to synthesize first"]
    fresh = invoke_here("--synth")
    assert fresh.returncode == 0, fresh.stderr
    assert (json.loads(fresh.stdout), "changed since" in fresh.stderr) == ("two", False)


def test_the_freshness_check_never_reads_a_folder_outside_the_app_that_an_assembly_names(clean, tmp_path, host_secret):
    """The metadata of an assembly made elsewhere names folders of that machine: they are not read here."""
    out = copy_of(clean, tmp_path / "elsewhere")
    manifest = json.loads((out / "manifest.json").read_text())
    artifact = manifest["artifacts"]["S"]
    entry = {"type": "layerkit:function", "data": {
        "source": {"path": str(host_secret), "kind": "function", "excludes": [], "digest": "0" * 64}}}
    if extra := artifact.get("additionalMetadataFile"):  # where the CDK keeps a stack's construct metadata
        metadata = json.loads((out / extra).read_text())
        metadata.setdefault("/S/Fn", []).append(entry)
        (out / extra).write_text(json.dumps(metadata))
    else:
        artifact.setdefault("metadata", {}).setdefault("/S/Fn", []).append(entry)
        (out / "manifest.json").write_text(json.dumps(manifest))
    result = cli("invoke", "S/Fn", "--backend", "sandbox", "--assembly", str(out))
    assert result.returncode == 0, result.stderr
    assert "changed since" not in result.stderr
