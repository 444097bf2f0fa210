"""The README's example as a reader runs it: its app saved as example.py beside the README, the two commands
under it, as written, on the machine that reads it (x86_64 or arm64 alike: the example names no architecture)."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess

from tests.conftest import ROOT


def readme_example() -> tuple[str, list[str]]:
    """The README's python block, and the commands of the indented block that follows it."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("## An example", 1)[1].split("\n## ", 1)[0]
    app = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    after = section.split("```", 2)[2]
    commands = [line.strip() for line in after.splitlines() if line.startswith("    ") and line.strip()]
    return app, commands


def test_the_readmes_example_runs_as_written(tmp_path, kit_cache):
    app, commands = readme_example()
    assert len(commands) == 2, commands
    # Beside the README as the README says, but in a folder of the test's (the paths in it are the README's).
    (tmp_path / "example.py").write_text(app, encoding="utf-8")
    env = {**os.environ, "LAYERKIT_CACHE_DIR": str(kit_cache),
           "PATH": f"{ROOT / '.venv' / 'bin'}:{ROOT / 'node_modules' / '.bin'}:{os.environ['PATH']}"}
    for command in commands:
        words = shlex.split(command)
        words = words[1:] if words[0] == "npx" else words  # the CDK CLI of node_modules/.bin, as npx finds it
        words = [w.replace("example.py", str(tmp_path / "example.py"))
                  .replace("example.out", str(tmp_path / "example.out")) for w in words]
        result = subprocess.run(words, cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
        assert result.returncode == 0, f"{command}\n{result.stderr[-3000:]}"
    answer = json.loads(result.stdout.strip().splitlines()[-1])
    assert answer["ok"] is True
    assert answer["total"] == "102.30"
