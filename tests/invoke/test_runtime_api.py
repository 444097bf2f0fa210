"""The local Runtime API (layerkit.invoke.runtime_api): a response over Lambda's limit is refused without the kit
reading more of it than Lambda would."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

from tests.invoke.apps import cli_probe


# -- 3. Lambda's limits ----------------------------------------------------------------------------------
def test_a_response_over_lambdas_limit_is_response_size_too_large(probe_app):
    largest = cli_probe(probe_app, "S/Probe", "--event", "-", stdin='{"action": "big", "bytes": 6291556}')
    assert largest.returncode == 0, largest.stderr[-500:]
    assert len(largest.stdout.rstrip("\n")) == 6291556
    over = cli_probe(probe_app, "S/Probe", "--event", "-", stdin='{"action": "big", "bytes": 6291557}')
    assert over.returncode == 1
    assert json.loads(over.stdout) == {
        "errorType": "Function.ResponseSizeTooLarge",
        "errorMessage": "Response payload size exceeded maximum allowed payload size (6291556 bytes)."}


def test_the_kit_reads_no_more_of_a_response_than_lambda_returns(limits_assembly, tmp_path):
    """A function that answers 300 MB: the kit's own memory stays far below what the function sent."""
    probe = tmp_path / "probe.py"
    probe.write_text(textwrap.dedent(f"""
        import json, sys
        from layerkit.cli import main

        def peak_mb():  # this process's own peak (getrusage's would count the parent's at the fork)
            status = open("/proc/self/status").read()
            return int(status.split("VmHWM:")[1].split()[0]) // 1024

        code = main(["invoke", "--assembly", {str(limits_assembly)!r}, "S/Large", "--backend", "sandbox",
                     "--event", "-"])
        print(json.dumps({{"code": code, "peak_mb": peak_mb()}}),
              file=sys.stderr)
    """))
    result = subprocess.run([sys.executable, str(probe)], input='{"action": "respond", "mb": 300}', text=True,
                            capture_output=True, timeout=300)
    outcome = json.loads(result.stderr.strip().splitlines()[-1])
    assert json.loads(result.stdout)["errorType"] == "Function.ResponseSizeTooLarge"
    assert outcome["code"] == 1
    assert outcome["peak_mb"] < 150, outcome
