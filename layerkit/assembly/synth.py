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
import threading
from collections.abc import Callable
from pathlib import Path

from layerkit.core.errors import AssemblyError, SynthError

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


def synthesize(folder: Path, outdir: Path, echo: Callable[[str], None] | None = None) -> Path:
    """Synthesize the app of ``folder`` into ``outdir``; the assembly folder. Each line the synth prints (the
    kit's build progress, the CDK's warnings and errors) goes to ``echo`` as it comes. A synth that fails is a
    :class:`~layerkit.core.errors.SynthError` holding the mistakes the CDK printed, one line each."""
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
    lines: list[str] = []
    with subprocess.Popen(command, cwd=folder, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, errors="replace") as proc:
        timed_out = threading.Event()
        timer = threading.Timer(SYNTH_TIMEOUT_S, lambda: (timed_out.set(), proc.kill()))
        timer.start()
        try:
            assert proc.stdout is not None
            for line in proc.stdout:
                line = line.rstrip("\n")
                if not line.strip() or line.startswith(("!!", "b'!!")):
                    continue  # the jsii runtime's Node.js banner
                lines.append(line)
                if echo is not None:
                    echo(line)
        finally:
            timer.cancel()
        proc.wait()
    if timed_out.is_set():
        raise AssemblyError(f"synthesizing {folder} took over {SYNTH_TIMEOUT_S} s; run 'cdk synth' there")
    if proc.returncode != 0:
        mistakes = [line.strip() for line in lines if line.lstrip().startswith(("[Error at ", "ERROR "))]
        shown = bool(mistakes)
        mistakes = mistakes or _reported(outdir)
        if mistakes:
            raise SynthError(f"the synth of {folder} found {len(mistakes)} error(s): fix them and run again",
                             mistakes, shown=shown and echo is not None)
        tail = " / ".join(line.strip() for line in lines[-3:]) or "no output"
        raise AssemblyError(f"synthesizing {folder} failed ({' '.join(command[:2])}...): {tail}")
    return outdir


def _reported(outdir: Path) -> list[str]:
    """The errors of the validation report an app writes when it stops on them (the recommended flag
    ``@aws-cdk/core:annotationsInValidationReport``), one line each, as the CDK prints them."""
    try:
        report = json.loads((outdir / "validation-report.json").read_text(encoding="utf-8"))
        return [f"ERROR {violation['description']}" for plugin in report.get("pluginReports", [])
                for violation in plugin.get("violations", []) if violation.get("severity") == "error"]
    except (OSError, ValueError, TypeError, KeyError, AttributeError):
        return []
