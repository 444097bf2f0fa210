"""Long work is never silent: a cold `make run` and a cold `layerkit invoke --synth` of the example (empty kit
cache, empty uv cache) never leave the user more than 10 s without a line (core/progress.py)."""

from __future__ import annotations

import os
import subprocess
import time

from tests.conftest import ROOT

MAX_SILENCE_S = 10.0


def longest_silence(command: list[str], env: dict[str, str]) -> tuple[float, str, str]:
    """Run ``command`` (stdout and stderr together); the longest time without a line, the line that ended it, and
    the whole output."""
    lines = []
    started = last = time.monotonic()
    longest, after = 0.0, ""
    with subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          bufsize=1) as proc:
        assert proc.stdout is not None
        for line in proc.stdout:
            now = time.monotonic()
            if now - last > longest:
                longest, after = now - last, line.strip()
            last = now
            lines.append(f"{now - started:6.1f} {line.rstrip()}")
        proc.wait(timeout=1200)
    output = "\n".join(lines)
    assert proc.returncode == 0, output[-4000:]
    if time.monotonic() - last > longest:
        longest, after = time.monotonic() - last, "(the end)"
    return longest, after, output


def cold(tmp_path) -> dict[str, str]:
    env = {**os.environ, "LAYERKIT_CACHE_DIR": str(tmp_path / "kit-cache"), "UV_CACHE_DIR": str(tmp_path / "uv-cache")}
    env.pop("CI", None)  # CI's stricter build refuses nothing here, but keep the user's view
    return env


def test_a_cold_invoke_with_synth_says_something_at_least_every_10_s(tmp_path):
    longest, after, output = longest_silence(
        [str(ROOT / ".venv" / "bin" / "layerkit"), "invoke", "--synth", "--assembly", str(tmp_path / "cdk.out"),
         "lambda-layers-example-order-total/Function", "--event", "lambdas/order_total/events/order.json"],
        cold(tmp_path))
    print(f"longest silence of a cold layerkit invoke --synth: {longest:.1f} s, before: {after}")  # (pytest -rP)
    assert longest < MAX_SILENCE_S, f"{longest:.1f} s without a line before: {after}\n{output}"
    assert '"total": "102.30"' in output


def test_a_cold_make_run_says_something_at_least_every_10_s(tmp_path):
    longest, after, output = longest_silence(["make", "run"], cold(tmp_path))
    print(f"longest silence of a cold make run: {longest:.1f} s, before: {after}")  # (pytest -rP)
    assert longest < MAX_SILENCE_S, f"{longest:.1f} s without a line before: {after}\n{output}"
    assert "lambda-layers-example-text-stats/Function" in output
