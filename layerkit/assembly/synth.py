"""Synthesize a CDK app into a cloud assembly, as ``cdk synth`` does: for ``layerkit invoke --synth`` and the
pytest plugin's ``layerkit_assembly`` fixture.

The app is the folder's ``cdk.json``. Its CDK CLI is used where one is installed (the project's
``node_modules/.bin/cdk``, searched upwards from the app's folder, else ``cdk`` on PATH); without one, the
``app`` command of ``cdk.json`` runs directly with its context, as the CLI would hand it over.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

from layerkit.core.errors import AssemblyError

SYNTH_TIMEOUT_S = 1800


def app_folder(start: Path) -> Path:
    """The folder of the CDK app that ``start`` belongs to: the nearest one upwards holding ``cdk.json``."""
    start = start.resolve()
    for folder in (start, *start.parents):
        if (folder / "cdk.json").is_file():
            return folder
    raise AssemblyError(f"no cdk.json in {start} or above it: run in the app's folder (the one holding cdk.json)")


def cdk_cli(folder: Path) -> list[str] | None:
    """The command of the app's CDK CLI, or None."""
    for parent in (folder, *folder.parents):
        if (candidate := parent / "node_modules" / ".bin" / "cdk").is_file():
            return [str(candidate)]
    found = shutil.which("cdk")
    return [found] if found else None


def synthesize(folder: Path, outdir: Path) -> Path:
    """Synthesize the app of ``folder`` into ``outdir``; the assembly folder. A failed synth is an
    :class:`~layerkit.core.errors.AssemblyError` with the synth's own last lines."""
    folder = app_folder(folder)
    outdir = outdir if outdir.is_absolute() else (Path.cwd() / outdir)
    cli = cdk_cli(folder)
    env = {**os.environ}
    if cli is not None:
        command = [*cli, "synth", "--quiet", "--output", str(outdir)]
    else:
        settings = json.loads((folder / "cdk.json").read_text())
        context = dict(settings.get("context", {}))
        if (folder / "cdk.context.json").is_file():
            context.update(json.loads((folder / "cdk.context.json").read_text()))
        env.update({"CDK_OUTDIR": str(outdir), "CDK_CONTEXT_JSON": json.dumps(context)})
        command = ["/bin/sh", "-c", settings["app"]]
    try:
        proc = subprocess.run(command, cwd=folder, env=env, capture_output=True, text=True, timeout=SYNTH_TIMEOUT_S,
                              check=False)
    except subprocess.TimeoutExpired:
        raise AssemblyError(f"synthesizing {folder} took over {SYNTH_TIMEOUT_S} s; run 'cdk synth' there") from None
    if proc.returncode != 0:
        lines = [line for line in (proc.stderr + proc.stdout).splitlines()
                 if line.strip() and not line.startswith(("!!", "b'!!"))]
        tail = " / ".join(line.strip() for line in lines[-3:]) or "no output"
        raise AssemblyError(f"synthesizing {folder} failed ({' '.join(command[:2])}...): {tail}")
    return outdir
