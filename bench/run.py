"""`make bench`: layerkit's figures, each a ratio of two things measured side by side in one run.

Writes bench/results.json, and its Markdown tables into docs/benchmarks.md (bench/report.py). A figure that misses
its target is marked, never dropped; a peer that fails is reported with its first error line. Work files go to
bench/work/.

    .venv/bin/python bench/run.py [--runs N] [--synth-runs N] [--invoke-runs N] [--no-scaling] [--no-docker]
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import textwrap
import threading
import time
import zipfile
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import peers  # noqa: E402  (bench/peers.py, beside this file)
from peers import WORK, Run, fresh, kit, layer_folder  # noqa: E402
from report import tables, write_docs  # noqa: E402  (bench/report.py)

import layerkit  # noqa: E402,F401  (first: quiets the jsii Node.js banner)
from layerkit.assembly import Assembly, LayerUse  # noqa: E402
from layerkit.core.archive import unzipped_size  # noqa: E402
from layerkit.core.interpreters import find_python  # noqa: E402
from layerkit.core.targets import Target  # noqa: E402
from layerkit.invoke.layout import prepare_layout  # noqa: E402
from layerkit.invoke.session import open_environment  # noqa: E402

RESULTS = ROOT / "bench" / "results.json"
SCALING = ROOT / "bench" / "scaling"
MY_LAYER = ROOT / "layers" / "my_layer"
VENV_BIN = Path(sys.executable).parent
TARGET = Target("python3.12", "x86_64")
SETS = {"deps-5": SCALING / "deps-5.txt", "heavy": SCALING / "heavy.txt"}
ORDER_FUNCTION = "lambda-layers-example-order-total/Function"
ORDER_EVENT = (ROOT / "lambdas" / "order_total" / "events" / "order.json").read_bytes()


_LAST = {"message": "starting", "at": time.monotonic()}
#: The longest the bench goes without a line: a step that runs longer says it still is.
HEARTBEAT_S = 10.0


def log(message: str) -> None:
    print(f"bench: {message}", file=sys.stderr, flush=True)
    _LAST.update(message=message, at=time.monotonic())


def _heartbeat() -> None:
    started = time.monotonic()
    while True:
        time.sleep(1)
        if time.monotonic() - _LAST["at"] >= HEARTBEAT_S:
            print(f"bench: still at: {_LAST['message']} ({time.monotonic() - started:.0f} s into the bench)",
                  file=sys.stderr, flush=True)
            _LAST["at"] = time.monotonic()


threading.Thread(target=_heartbeat, name="bench-heartbeat", daemon=True).start()


def median(values: list[float]) -> float:
    return statistics.median(values)


Rule = Callable[[float, float | None], bool]


def at_most(limit: float) -> Rule:
    """The rule of a ``ratio <= limit`` target, for one run against its baseline."""
    return lambda kit_s, baseline_s: baseline_s is not None and kit_s / baseline_s <= limit


def figure(kit_value: float | None, baseline: float | None, target: str, passed: bool | None, unit: str, *,
           rule: Rule | None = None, **extra: object) -> dict[str, object]:
    """One figure: the medians, their ratio, and the spread (min-max) of the runs beside them.

    With a ``rule`` (the target, for one run against the baseline run beside it, or the baseline's median where
    the runs are not paired), the verdict comes from the spread: met when every run meets it, missed when none does,
    and ``"noise"`` when the runs fall on both sides: the target lies within this run's noise, and no verdict is
    claimed either way."""
    ratio = round(kit_value / baseline, 4) if kit_value is not None and baseline else None
    kit_runs = [r for r in extra.get("kit_runs", []) or [] if isinstance(r, int | float)]
    baseline_runs = [r for r in extra.get("baseline_runs", []) or [] if isinstance(r, int | float)]
    paired = list(zip(kit_runs, baseline_runs, strict=True)) if kit_runs and len(kit_runs) == len(baseline_runs) \
        else [(k, baseline) for k in kit_runs]
    spread = [min(kit_runs), max(kit_runs)] if kit_runs else None
    ratios = [k / b for k, b in paired if b]
    ratio_spread = [round(min(ratios), 4), round(max(ratios), 4)] if ratios else None
    if rule is not None and kit_value is not None:
        met = [rule(k, b) for k, b in paired] or [rule(kit_value, baseline)]
        passed = True if all(met) else False if not any(met) else "noise"  # type: ignore[assignment]
    return {"kit": kit_value, "baseline": baseline, "ratio": ratio, "unit": unit, "target": target, "pass": passed,
            "spread": spread, "ratio_spread": ratio_spread, **extra}


def run(command: list[str], **kwargs: object) -> float:
    """Wall time of a command that must succeed."""
    started = time.perf_counter()
    proc = subprocess.run(command, capture_output=True, text=True, **kwargs)  # type: ignore[call-overload]
    elapsed = time.perf_counter() - started
    if proc.returncode != 0:
        raise SystemExit(f"bench: {' '.join(command[:4])}... failed:\n{proc.stderr[-2000:]}")
    return elapsed


# -- against the tools people use instead ---------------------------------------------------------------
TOOLS: dict[str, Callable[[Path, str], Run]] = {
    "kit": lambda req, name: kit(req, name, TARGET),
    "kit_no_bytecode": lambda req, name: kit(req, name, TARGET, bytecode=False),
    "uv_recipe": lambda req, name: peers.uv_recipe(req, name, TARGET),
    "sam_builder": lambda req, name: peers.sam_builder(req, name, TARGET),
    "pip_documented": lambda req, name: peers.pip_documented(req, name, TARGET),
}
PEER_FIGURES = {  # figure: (the kit's variant, the peer, target ratio or None)
    "cold_vs_uv_recipe": ("kit_no_bytecode", "uv_recipe", 0.8),
    "cold_vs_sam_builder": ("kit", "sam_builder", 0.8),
    "cold_vs_pip_documented": ("kit", "pip_documented", None),
}


def bench_peers(runs: int) -> tuple[dict[str, object], dict[str, object]]:
    """Every tool on every set from empty caches (downloads included), interleaved round by round, so that
    each round's network and machine noise falls on all of them; each round starts with the next tool, so that
    none is always the first to ask the registry for a set's files."""
    measured: dict[str, dict[str, list[Run]]] = {s: {t: [] for t in TOOLS} for s in SETS}
    names = list(TOOLS)
    for round_ in range(runs):
        order = names[round_ % len(names):] + names[:round_ % len(names)]
        for set_name, requirements in SETS.items():
            for tool in order:
                build = TOOLS[tool]
                log(f"peers round {round_ + 1}/{runs}: {set_name}: {tool}")
                measured[set_name][tool].append(build(requirements, f"peer-{set_name}-{tool}"))
    figures: dict[str, object] = {}
    table: dict[str, object] = {}
    for set_name, tools in measured.items():
        table[set_name] = {}
        for tool, runs_ in tools.items():
            ok = [r.seconds for r in runs_ if r.seconds is not None]
            error = next((r.error for r in runs_ if r.error), None)
            last_zip = next((r.zip for r in reversed(runs_) if r.zip), None)
            table[set_name][tool] = {
                "median_s": median(ok) if len(ok) == len(runs_) else None, "runs": [r.seconds for r in runs_],
                "error": error, "zipped_bytes": last_zip.stat().st_size if last_zip else None,
                "unzipped_bytes": unzipped_size(last_zip) if last_zip else None,
            }
        for name, (mine, peer, limit) in PEER_FIGURES.items():
            kit_s, peer_s = table[set_name][mine]["median_s"], table[set_name][peer]["median_s"]
            target = f"ratio <= {limit}" if limit else "none (reported)"
            figures[f"{name}.{set_name}"] = figure(
                kit_s, peer_s, target, None, "s", rule=at_most(limit) if limit and peer_s is not None else None,
                runs=runs, kit_runs=table[set_name][mine]["runs"], baseline_runs=table[set_name][peer]["runs"],
                kit_tool=mine, peer=peer, peer_error=table[set_name][peer]["error"])
    figures.update(downloads_cached(runs))
    return figures, table


def downloads_cached(runs: int) -> dict[str, object]:
    """The kit (empty cache, no .pyc) against uv's recipe with uv's download cache warm for both: what is left
    when the downloads, the same for both and the noisiest part of a cold build, are taken out."""
    figures: dict[str, object] = {}
    for set_name, requirements in SETS.items():
        uv_cache = fresh(f"dc-{set_name}-uv-cache")
        peers.uv_recipe(requirements, f"dc-{set_name}-prime", TARGET, uv_cache=uv_cache)
        mine: list[float | None] = []
        theirs: list[float | None] = []
        for round_ in range(runs):
            log(f"downloads cached {round_ + 1}/{runs}: {set_name}")
            mine.append(kit(requirements, f"dc-{set_name}-kit", TARGET, bytecode=False, uv_cache=uv_cache).seconds)
            theirs.append(peers.uv_recipe(requirements, f"dc-{set_name}-uv", TARGET, uv_cache=uv_cache).seconds)
        kit_s = median(mine) if None not in mine else None
        peer_s = median(theirs) if None not in theirs else None
        figures[f"cold_vs_uv_recipe_downloads_cached.{set_name}"] = figure(
            kit_s, peer_s, "none (reported)", None, "s", kit_runs=mine, baseline_runs=theirs,
            note="kit --no-bytecode from an empty kit cache against uv's recipe, uv's cache warm for both")
    return figures


# -- the per-package cache ------------------------------------------------------------------------------
def bench_package_cache(runs: int) -> dict[str, object]:
    """One pin changed, a second layer sharing packages, a cache hit, determinism. The kit's cache starts empty in
    each cold run; uv's download cache is warm, so that these figures measure the kit's own cache."""
    uv_cache = fresh("pc-uv-cache")
    deps20 = SCALING / "deps-20.txt"
    layer = layer_folder(deps20, "pc-layer-20")
    kit(deps20, "pc-prime", TARGET, uv_cache=uv_cache, layer=layer)  # downloads once
    cold = []
    for i in range(runs):
        log(f"package cache {i + 1}/{runs}: the 20-dependency layer, cold")
        cold.append(kit(deps20, "pc-cold", TARGET, uv_cache=uv_cache, layer=layer).seconds)
    cache = fresh("pc-cache")
    kit(deps20, "pc-base", TARGET, uv_cache=uv_cache, layer=layer, cache=cache)
    changed = []
    for version in ("1.0.1", "1.0.0", "0.10.0")[:runs]:  # a new version of one small package, each time
        text = deps20.read_text().replace("jmespath==1.1.0", f"jmespath=={version}")
        (layer / "requirements.txt").write_text(text)
        log(f"package cache: one pin changed (jmespath {version})")
        changed.append(kit(deps20, "pc-changed", TARGET, uv_cache=uv_cache, layer=layer, cache=cache).seconds)
    shutil.copy(deps20, layer / "requirements.txt")

    second = layer_folder(SCALING / "deps-5.txt", "pc-second")
    (second / "python" / "second_layer.py").write_text("VALUE = 2\n")
    second_cold, second_shared = [], []
    for i in range(runs):
        log(f"package cache {i + 1}/{runs}: a second layer sharing packages, cold then after the first")
        second_cold.append(kit(SCALING / "deps-5.txt", "pc-second-cold", TARGET, uv_cache=uv_cache,
                               layer=second).seconds)
        shared_cache = fresh(f"pc-shared-cache-{i}")
        kit(deps20, "pc-first", TARGET, uv_cache=uv_cache, layer=layer, cache=shared_cache)
        second_shared.append(kit(SCALING / "deps-5.txt", "pc-second-shared", TARGET, uv_cache=uv_cache,
                                 layer=second, cache=shared_cache).seconds)

    hit_cache = fresh("pc-hit-cache")
    hit_layer = layer_folder(SCALING / "deps-5.txt", "pc-hit-layer")
    kit(SCALING / "deps-5.txt", "pc-hit-prime", TARGET, uv_cache=uv_cache, layer=hit_layer, cache=hit_cache)
    # Side by side: a bare start of the same interpreter before each hit (the floor any Python command pays).
    hits, bare = [], []
    for _ in range(max(15, runs)):
        bare.append(run([sys.executable, "-c", "pass"]))
        hits.append(kit(SCALING / "deps-5.txt", "pc-hit", TARGET, uv_cache=uv_cache, layer=hit_layer,
                        cache=hit_cache).seconds)
    hit_cold = median([kit(SCALING / "deps-5.txt", "pc-hit-cold", TARGET, uv_cache=uv_cache, layer=hit_layer).seconds
                       for _ in range(runs)])

    log("package cache: the same zip from a cold build, a per-package-cache build and one worker")
    cold_zip = kit(SCALING / "deps-5.txt", "det-cold", TARGET, uv_cache=uv_cache, layer=second).zip
    per_package = kit(SCALING / "deps-5.txt", "det-shared", TARGET, uv_cache=uv_cache, layer=second,
                      cache=WORK / "pc-shared-cache-0").zip
    one_worker = kit(SCALING / "deps-5.txt", "det-one", TARGET, uv_cache=uv_cache, layer=second, workers=1).zip
    digests = [_sha(z) for z in (cold_zip, per_package, one_worker)]

    cold_s, changed_s = median(cold), median(changed)
    return {
        "one_pin_changed": figure(changed_s, cold_s, "ratio <= 0.15", None, "s", rule=at_most(0.15),
                                  kit_runs=changed, baseline_runs=cold,
                                  note="jmespath's pin changed in the 20-dependency layer (34 packages), the package "
                                       "cache warm; baseline: the same layer's cold build (empty kit cache)"),
        "shared_packages_second_layer": figure(
            median(second_shared), median(second_cold), "ratio <= 0.3", None, "s", rule=at_most(0.3),
            kit_runs=second_shared,
            baseline_runs=second_cold, note="the 5-dependency layer (14 packages, all in the 20-dependency layer) "
                                            "built after that layer; baseline: its own cold build"),
        "cache_hit_cli": figure(median(hits), median(bare), "ratio <= 3", None, "s", rule=at_most(3),
                                kit_runs=hits, baseline_runs=bare, cold_build=hit_cold,
                                note="`layerkit build --json --out` of an unchanged layer, a new process each time; "
                                     "baseline: a bare start of the same interpreter (`python -c pass`), measured "
                                     "before each hit"),
        "zip_determinism": {"identical": len(set(digests)) == 1, "sha256": digests, "target": "identical",
                            "pass": len(set(digests)) == 1,
                            "note": "cold build, per-package-cache build, one worker (--workers 1)"},
    }


def _sha(path: Path | None) -> str:
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest() if path else "missing"


# -- the example layer against the manual step ---------------------------------------------------------
def bench_manual_step(runs: int) -> dict[str, object]:
    requirements = MY_LAYER / "requirements.txt"
    manual, kit_runs, in_synth = [], [], []
    kit_zip = manual_zip = None
    for i in range(runs):
        log(f"example layer {i + 1}/{runs}: the manual step, then layerkit (empty caches)")
        manual_run = peers.manual_step(requirements, "manual", MY_LAYER / "python")
        kit_run = kit(requirements, "kit-my-layer", TARGET, layer=MY_LAYER)
        manual.append(manual_run.seconds)
        kit_runs.append(kit_run.seconds)
        manual_zip, kit_zip = manual_run.zip, kit_run.zip
    warm_cache, warm_uv = fresh("warm-cache"), fresh("warm-uv-cache")
    kit(requirements, "warm-prime", TARGET, layer=MY_LAYER, cache=warm_cache, uv_cache=warm_uv)
    for _ in range(runs):
        proc = subprocess.run([str(VENV_BIN / "layerkit"), "build", str(MY_LAYER), "--runtime", "python3.12", "--arch",
                               "x86_64", "--json", "--cache-dir", str(warm_cache)], capture_output=True, text=True,
                              check=True)
        in_synth.append(float(json.loads(proc.stdout)["seconds"]))
    cold = median(kit_runs)
    if kit_zip is None or manual_zip is None:
        raise SystemExit("bench: the example layer's builds made no zip")
    return {
        "layer_build_cold": figure(cold, median(manual), "ratio <= 0.33", None, "s", rule=at_most(0.33),
                                   kit_runs=kit_runs, baseline_runs=manual,
                                   baseline_command=f"{peers.machine_python()} -m pip install -r requirements.txt "
                                                    "-t python/ && zip -qr layer.zip python"),
        "layer_build_warm_in_synth": figure(median(in_synth), cold, "none (what a synth pays per layer)", None, "s",
                                            kit_runs=in_synth, note="cache hits timed inside build_layer"),
        "layer_zip_bytes": figure(kit_zip.stat().st_size, manual_zip.stat().st_size, "ratio <= 1.0",
                                  kit_zip.stat().st_size <= manual_zip.stat().st_size, "B"),
        "layer_unzipped_bytes": figure(unzipped_size(kit_zip), unzipped_size(manual_zip), "ratio <= 1.0",
                                       unzipped_size(kit_zip) <= unzipped_size(manual_zip), "B"),
    }


# -- synth -----------------------------------------------------------------------------------------
def cdk_synth(app_command: str | None, outdir: Path, env: dict[str, str]) -> float:
    command = ["npx", "cdk", "synth", "--quiet", "-o", str(outdir), "-c", "layerkit:builder=local"]
    if app_command:
        command += ["-a", app_command]
    return run(command, cwd=ROOT, env=env)


def bench_synth(runs: int) -> dict[str, object]:
    env = {**os.environ, "PATH": f"{VENV_BIN}{os.pathsep}{os.environ['PATH']}"}
    kit_out = WORK / "synth-kit"
    cdk_synth(None, kit_out, env)  # warms the layer cache
    prebuilt = fresh("prebuilt-layers")
    for layer in Assembly.load(kit_out).layers():
        with zipfile.ZipFile(layer.asset) as archive:
            archive.extractall(prebuilt / layer.name)
    plain_env = {**env, "PREBUILT_LAYERS": str(prebuilt)}
    plain_app = f"{sys.executable} {ROOT / 'bench' / 'prebuilt_app.py'}"
    kit_times, plain_times = [], []
    for i in range(runs):
        log(f"synth {i + 1}/{runs}: example app (warm caches), then the same app with prebuilt layers")
        kit_times.append(cdk_synth(None, kit_out, env))
        plain_times.append(cdk_synth(plain_app, WORK / "synth-plain", plain_env))
    return {"synth_overhead": figure(median(kit_times), median(plain_times), "ratio <= 1.15", None, "s",
                                     rule=at_most(1.15),
                                     kit_runs=kit_times, baseline_runs=plain_times)}


# -- invoke ----------------------------------------------------------------------------------------
def floor_cold(function: object, layout: object, python: Path) -> float:
    """The same interpreter importing the handler and calling it once, outside any sandbox."""
    code = (f"import json, sys; sys.path[:0] = [{str(layout.task)!r}, {str(layout.opt / 'python')!r}]\n"
            f"import {function.handler.rsplit('.', 1)[0]} as h\n"
            f"h.{function.handler.rsplit('.', 1)[1]}(json.loads({ORDER_EVENT.decode()!r}), None)\n")
    return run([str(python), "-I", "-S", "-B", "-c", code])


def cold_and_warm(function: object, backend: str, runs: int) -> tuple[list[float], list[float], list[float]]:
    """Wall times of cold invokes (environment start to response), their Init Durations, and warm invokes."""
    walls, inits, warm = [], [], []
    for _ in range(runs):
        with open_environment(function, backend=backend) as environment:
            started = time.perf_counter()
            result = environment.invoke(ORDER_EVENT)
            walls.append(time.perf_counter() - started)
            assert result.ok, result.body
            inits.append((result.init_ms or 0) / 1000)
            started = time.perf_counter()
            environment.invoke(ORDER_EVENT)
            warm.append(time.perf_counter() - started)
    return walls, inits, warm


def bench_invoke(runs: int) -> dict[str, object]:
    function = Assembly.load(WORK / "synth-kit").function(ORDER_FUNCTION)
    layout = prepare_layout(function)
    python = find_python("3.12")
    cold_and_warm(function, "sandbox", 1)  # prepares the runtime folder and warms the page cache
    walls, _, warm = cold_and_warm(function, "sandbox", runs)
    floors = [floor_cold(function, layout, python) for _ in range(runs)]
    cold, floor = median(walls), median(floors)
    return {
        "invoke_cold": figure(cold, floor, "kit <= 1.5 x floor + 60 ms", None, "s",
                              rule=lambda kit_s, floor_s: floor_s is not None and kit_s <= 1.5 * floor_s + 0.060,
                              kit_runs=walls, baseline_runs=floors,
                              note="sandbox; baseline: python3.12 importing the handler and calling it once"),
        "invoke_warm": figure(median(warm), None, "under 5 ms", None, "s", rule=lambda kit_s, _: kit_s < 0.005,
                              kit_runs=warm,
                              note="sandbox, one warm invoke through the Runtime API"),
    }


def bench_bytecode(runs: int) -> dict[str, object]:
    """Cold start with the layer as built without .pyc vs with the kit's deterministic .pyc."""
    function = Assembly.load(WORK / "synth-kit").function(ORDER_FUNCTION)
    variants = {}
    uv_cache = fresh("pyc-uv-cache")
    for bytecode in (False, True):
        built = kit(MY_LAYER / "requirements.txt", f"pyc-{bytecode}", TARGET, bytecode=bytecode, layer=MY_LAYER,
                    uv_cache=uv_cache)
        assert built.zip
        layers = tuple(
            LayerUse(dataclasses.replace(use.layer, asset=built.zip), use.via) if use.layer.name == "my_layer"
            else use for use in function.layers
        )
        variants[bytecode] = (dataclasses.replace(function, layers=layers), built.zip)
    inits: dict[bool, list[float]] = {False: [], True: []}
    for i in range(runs):
        log(f"cold start imports {i + 1}/{runs}: layer without .pyc, then with")
        for bytecode, (variant, _) in variants.items():
            inits[bytecode] += cold_and_warm(variant, "sandbox", 1)[1]
    with_pyc, without = median(inits[True]), median(inits[False])
    sizes = {b: (z.stat().st_size, unzipped_size(z)) for b, (_, z) in variants.items()}
    return {"cold_start_import": figure(
        with_pyc, without, "report both; the better default wins", None, "s",
        rule=lambda with_s, without_s: without_s is not None and with_s < without_s,
        kit_runs=inits[True], baseline_runs=inits[False],
        zipped_bytes={"with_pyc": sizes[True][0], "without_pyc": sizes[False][0]},
        unzipped_bytes={"with_pyc": sizes[True][1], "without_pyc": sizes[False][1]},
        note="Init Duration in the sandbox (runtime start + imports); kit: unchecked-hash .pyc; baseline: none")}


# -- Docker ----------------------------------------------------------------------------------------
DOCKER_SYNTH = textwrap.dedent("""
    import sys, time
    import layerkit
    from aws_cdk import App, Stack
    from aws_cdk import aws_lambda as lambda_
    app = App(outdir=sys.argv[2], context={"layerkit:builder": "docker", "layerkit:docker-network": "host"})
    started = time.perf_counter()
    layer = layerkit.SharedPythonLayer(Stack(app, "S"), "L", entry=sys.argv[1], runtime=lambda_.Runtime.PYTHON_3_13,
                                       docker_image_dir=sys.argv[3])
    print(time.perf_counter() - started, layer.code.bundled_by.node.path)
""")


def docker_ready() -> str | None:
    """None when the engine answers and has the python3.13 stand-ins (make docker-images), else why not."""
    if shutil.which("docker") is None or subprocess.run(["docker", "info"], capture_output=True).returncode != 0:
        return "no Docker daemon answers"
    for image in ("public.ecr.aws/sam/build-python3.13", "public.ecr.aws/lambda/python:3.13"):
        if subprocess.run(["docker", "image", "inspect", image], capture_output=True).returncode != 0:
            return f"{image} is not in the engine (make docker-images)"
    return None


def bench_docker(runs: int) -> dict[str, object]:
    """The Docker builder (PythonLayerVersion on the build image) and the container invoke, beside the Docker-free
    build and the sandbox, for python3.13 (the stand-in images)."""
    if why := docker_ready():
        skipped = {"kit": None, "baseline": None, "ratio": None, "target": "report", "pass": None,
                   "note": f"skipped: {why}"}
        return {name: skipped for name in ("docker_layer_build_cold_image", "docker_layer_build_warm_image",
                                           "container_invoke_cold", "container_invoke_warm")}
    target = Target("python3.13", "x86_64")
    env = {**os.environ, "LAYERKIT_CACHE_DIR": str(fresh("docker-kit-cache")), "PYTHONPATH": str(ROOT)}

    def docker_build(name: str) -> float:
        proc = subprocess.run([sys.executable, "-c", DOCKER_SYNTH, str(MY_LAYER), str(fresh(name)),
                               str(ROOT / "docker")], capture_output=True, text=True, env=env, check=True)
        return float(proc.stdout.split()[0])

    cold_image, warm_image, local = [], [], []
    uv_cache = fresh("docker-uv-cache")
    for i in range(runs):
        log(f"docker {i + 1}/{runs}: layer build with a cold image, a warm image, and without Docker")
        images = subprocess.run(["docker", "images", "--format", "{{.Repository}}", "--filter", "reference=cdk-*"],
                                capture_output=True, text=True).stdout.split()
        for image in images:
            subprocess.run(["docker", "rmi", "--force", image], capture_output=True)
        cold_image.append(docker_build("docker-cold"))
        warm_image.append(docker_build("docker-warm"))
        local.append(kit(MY_LAYER / "requirements.txt", "docker-local", target, layer=MY_LAYER,
                         uv_cache=uv_cache).seconds)
    from aws_cdk import App
    from aws_cdk import aws_lambda as lambda_

    import app as example_app

    outdir = fresh("synth-313")
    cdk_app = App(outdir=str(outdir), context={"layerkit:builder": "local"})
    example_app.RUNTIME = lambda_.Runtime.PYTHON_3_13
    example_app.build(cdk_app)
    function = Assembly.load(cdk_app.synth().directory).function(ORDER_FUNCTION)
    cold_and_warm(function, "docker", 1)
    cold_and_warm(function, "sandbox", 1)
    container = cold_and_warm(function, "docker", runs)
    sandbox = cold_and_warm(function, "sandbox", runs)
    return {
        "docker_layer_build_cold_image": figure(median(cold_image), median(local), "none (reported)", None, "s",
                                                kit_runs=cold_image, baseline_runs=local,
                                                note="python3.13 my_layer: PythonLayerVersion on docker/Dockerfile, "
                                                     "its image built first; baseline: the Docker-free build"),
        "docker_layer_build_warm_image": figure(median(warm_image), median(local), "ratio <= 1.3", None, "s",
                                                rule=at_most(1.3),
                                                kit_runs=warm_image, baseline_runs=local,
                                                note="the same with the image already built: the image's uv installs "
                                                     "from the download cache the kit mounts (kept between runs)"),
        "container_invoke_cold": figure(median(container[0]), median(sandbox[0]), "none (reported)", None, "s",
                                        kit_runs=container[0], baseline_runs=sandbox[0],
                                        note="order_total python3.13: container start to response; baseline: the "
                                             "sandbox's"),
        "container_invoke_warm": figure(median(container[2]), median(sandbox[2]), "none (reported)", None, "s",
                                        kit_runs=container[2], baseline_runs=sandbox[2],
                                        note="one warm invoke; baseline: the sandbox's"),
    }


# -- a runtime x architecture matrix ----------------------------------------------------------------------
MATRIX_RUNTIMES = ("python3.11", "python3.12", "python3.13")
MATRIX_ARCHITECTURES = ("x86_64", "arm64")
MATRIX_REQUIREMENTS = "orjson==3.13.0\npython-dateutil==4.0.0\ntzdata==2026.6\n"
MATRIX_CHANGED = [f"orjson==3.13.0\npython-dateutil=={version}\nsix==1.17.0\ntzdata==2026.6\n"
                  for version in ("2.9.0.post0", "2.8.2", "2.8.1", "2.8.0", "2.7.5")]


def _matrix_build(layer: Path, cache: Path, uv_cache: Path) -> tuple[float, list[dict[str, object]]]:
    """``layerkit build`` of the whole matrix: its seconds and its versions."""
    command = [str(VENV_BIN / "layerkit"), "build", str(layer), "--json", "--cache-dir", str(cache)]
    for runtime in MATRIX_RUNTIMES:
        command += ["--runtime", runtime]
    for architecture in MATRIX_ARCHITECTURES:
        command += ["--arch", architecture]
    started = time.perf_counter()
    proc = subprocess.run(command, capture_output=True, text=True, env={**os.environ, "UV_CACHE_DIR": str(uv_cache)})
    seconds = time.perf_counter() - started
    if proc.returncode != 0:
        raise SystemExit(f"bench: the matrix build failed:\n{proc.stderr[-2000:]}")
    return seconds, json.loads(proc.stdout)["versions"]


def bench_matrix(runs: int) -> dict[str, object]:
    """orjson (compiled) and python-dateutil for python3.11 to 3.13 on both architectures: the kit's versions
    against one layer per pair (the publishers' way: Powertools, Klayers), cold and with one pin changed (uv's
    download cache warm, the kit's empty in each cold run)."""
    layer = fresh("matrix-layer")
    (layer / "python").mkdir()
    (layer / "python" / "bench_layer.py").write_text("VALUE = 1\n")
    uv_cache = fresh("matrix-uv-cache")
    (layer / "requirements.txt").write_text(MATRIX_REQUIREMENTS)
    _matrix_build(layer, fresh("matrix-prime"), uv_cache)  # downloads once
    matrix_cold, pairs_cold = [], []
    versions: list[dict[str, object]] = []
    pair_runs: list[Run] = []
    after_plain = []
    for round_ in range(runs):
        log(f"matrix {round_ + 1}/{runs}: the matrix cold; the folder built for {TARGET}, then the matrix; one "
            "layer per pair cold")
        seconds, versions = _matrix_build(layer, fresh("matrix-cache"), uv_cache)
        matrix_cold.append(seconds)
        # Side by side with the cold matrix: what a user who built the folder as a plain layer first pays for it.
        plain_cache = fresh("matrix-after-plain-cache")
        kit(layer / "requirements.txt", "matrix-plain", TARGET, cache=plain_cache, uv_cache=uv_cache, layer=layer)
        after_plain.append(_matrix_build(layer, plain_cache, uv_cache)[0])
        pair_cache = fresh("matrix-pairs-cache")
        pair_runs = [kit(layer / "requirements.txt", "matrix-pair", Target(r, a), cache=pair_cache,
                         uv_cache=uv_cache, layer=layer) for r in MATRIX_RUNTIMES for a in MATRIX_ARCHITECTURES]
        pairs_cold.append(sum(r.seconds or 0 for r in pair_runs))
    pairs_zipped = sum(r.zip.stat().st_size for r in pair_runs if r.zip)
    pairs_unzipped = sum(unzipped_size(r.zip) for r in pair_runs if r.zip)
    changed = []
    cache = fresh("matrix-changed-cache")
    _matrix_build(layer, cache, uv_cache)
    for round_ in range(runs):
        (layer / "requirements.txt").write_text(MATRIX_CHANGED[round_ % len(MATRIX_CHANGED)])  # a new pin each time
        log(f"matrix {round_ + 1}/{runs}: one pin changed")
        changed.append(_matrix_build(layer, cache, uv_cache)[0])
    (layer / "requirements.txt").write_text(MATRIX_REQUIREMENTS)
    kit_zipped = sum(int(v["zipped_bytes"]) for v in versions)
    kit_unzipped = sum(int(v["unzipped_bytes"]) for v in versions)
    note = (f"{len(versions)} layer versions ({', '.join('/'.join(v['architectures']) for v in versions)}) against "
            f"{len(pair_runs)}, one per pair")
    return {
        "matrix_versions": figure(len(versions), len(pair_runs), "fewer versions than pairs",
                                  len(versions) < len(pair_runs), "versions", note=note),
        "matrix_zipped_bytes": figure(kit_zipped, pairs_zipped, "none (reported)", None, "B"),
        "matrix_unzipped_bytes": figure(kit_unzipped, pairs_unzipped, "none (reported)", None, "B"),
        "matrix_build_cold": figure(median(matrix_cold), median(pairs_cold), "none (reported)", None, "s",
                                    kit_runs=matrix_cold, baseline_runs=pairs_cold,
                                    note="the whole matrix in one build against one build per pair (6), both cold"),
        "matrix_after_plain_build": figure(median(after_plain), median(matrix_cold), "none (reported)", None, "s",
                                           kit_runs=after_plain, baseline_runs=matrix_cold,
                                           note=f"the matrix after `layerkit build` of the same folder for {TARGET} "
                                                "(its package cache kept); baseline: the matrix cold"),
        "matrix_one_pin_changed": figure(median(changed), median(matrix_cold), "none (reported)", None, "s",
                                         kit_runs=changed,
                                         note="python-dateutil's pin changed, the package cache warm"),
    }


# -- slimming --------------------------------------------------------------------------------------------
SLIM_SETS = {"heavy": SCALING / "heavy.txt", "science": SCALING / "science.txt"}
SLIM_OPTIONS = {  # what `layerkit build` is given
    "default (.pyc)": (),
    "--no-bytecode": ("--no-bytecode",),
    "--slim tests": ("--slim", "tests"),
    "--slim debug-symbols": ("--slim", "debug-symbols"),
    "all three": ("--no-bytecode", "--slim", "tests", "--slim", "debug-symbols"),
}


def bench_slim() -> dict[str, object]:
    """The unzipped size of the heavy and science sets' layers with each slimming option (sizes are the same from
    run to run: one build each, package cache and downloads shared)."""
    rows = []
    for set_name, requirements in SLIM_SETS.items():
        layer = layer_folder(requirements, f"slim-{set_name}")
        cache, uv_cache = fresh(f"slim-{set_name}-cache"), fresh(f"slim-{set_name}-uv-cache")
        default = None
        for label, options in SLIM_OPTIONS.items():
            bytecode = "--no-bytecode" not in options
            rest = tuple(o for o in options if o != "--no-bytecode")
            built = kit(requirements, f"slim-{set_name}", TARGET, bytecode=bytecode, cache=cache, uv_cache=uv_cache,
                        layer=layer, options=rest)
            unzipped = unzipped_size(built.zip) if built.zip else None
            if unzipped is None and (over := re.search(r" is (\d+) MB unzipped", built.error or "")):
                refused_at = int(over.group(1)) * 1_048_576  # the kit's own measure of what it refused (MiB)
            else:
                refused_at = None
            if label == "default (.pyc)":
                default = unzipped or refused_at
            rows.append({"set": set_name, "options": label, "unzipped_bytes": unzipped, "refused_at": refused_at,
                         "zipped_bytes": built.zip.stat().st_size if built.zip else None,
                         "saved_bytes": default - (unzipped or refused_at) if default and (unzipped or refused_at)
                         else None, "error": built.error})
            log(f"slim: {set_name} {label}: {unzipped or built.error}")
    return {"rows": rows, "note": "layerkit build for python3.12 x86_64; 'saved' is against the default build "
                                  "(.pyc on); an error is the build refusing a layer over Lambda's 250 MB"}


# -- scaling ---------------------------------------------------------------------------------------------
def bench_scaling(runs: int) -> dict[str, object]:
    rows = []
    for name in ("deps-1", "deps-5", "deps-20", "heavy"):
        requirements = SCALING / f"{name}.txt"
        for arch in ("x86_64", "arm64"):
            target = Target("python3.12", arch)
            layer = layer_folder(requirements, f"scaling-{name}-{arch}")
            uv_cache = WORK / f"scaling-uv-cache-{arch}"
            kit(requirements, "scaling-prime", target, layer=layer, uv_cache=uv_cache)  # downloads once
            built = [kit(requirements, "scaling", target, layer=layer, uv_cache=uv_cache) for _ in range(runs)]
            last = built[-1]
            assert last.zip
            with zipfile.ZipFile(last.zip) as archive:
                packages = len({n.split("/")[1] for n in archive.namelist() if n.endswith(".dist-info/METADATA")})
            rows.append({"set": name, "packages": packages, "architecture": arch,
                         "build_s": median([b.seconds for b in built]), "zipped_bytes": last.zip.stat().st_size,
                         "unzipped_bytes": unzipped_size(last.zip)})
            log(f"scaling: {name} {arch}: {rows[-1]['build_s']:.2f} s")
    return {"rows": rows, "note": "layerkit build with an empty layer cache and a warm uv download cache, .pyc "
                                  "on; median of the runs"}


def cpu_reference() -> float:
    """Seconds for a fixed pure-Python loop (10**7 additions), median of 3: how fast this machine's CPU was.

    These machines share their hosts, and their speed changes from one day to the next (2.5x between two runs
    of the same commit): the figure lets two runs of ``make bench`` be compared, and shows when CPU-bound steps
    (the kit's .pyc, compression) moved against network-bound ones (the peers' downloads)."""
    def loop() -> float:
        started = time.perf_counter()
        total = 0
        for i in range(10**7):
            total += i
        return time.perf_counter() - started

    return round(median([loop() for _ in range(3)]), 3)


def machine(reference_at_start: float) -> dict[str, object]:
    model = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                  if line.startswith("model name")), platform.processor())
    return {"cores": os.cpu_count(), "cpu": model, "python": platform.python_version(), "system": platform.platform(),
            "python_loop_s": [reference_at_start, cpu_reference()]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="repetitions per build figure (median reported)")
    parser.add_argument("--peer-runs", type=int, default=5,
                        help="rounds of the peers' cold builds (downloads make them the noisiest figures)")
    parser.add_argument("--synth-runs", type=int, default=3, help="repetitions of each cdk synth")
    parser.add_argument("--invoke-runs", type=int, default=10, help="repetitions of each invoke figure")
    parser.add_argument("--no-scaling", action="store_true", help="skip the scaling table")
    parser.add_argument("--no-docker", action="store_true", help="skip the Docker figures")
    args = parser.parse_args()
    WORK.mkdir(parents=True, exist_ok=True)
    reference_at_start = cpu_reference()
    figures: dict[str, object] = {}
    peer_figures, peer_table = bench_peers(args.peer_runs)
    figures.update(peer_figures)
    figures.update(bench_package_cache(args.runs))
    figures.update(bench_manual_step(args.runs))
    figures.update(bench_synth(args.synth_runs))
    figures.update(bench_invoke(args.invoke_runs))
    figures.update(bench_bytecode(args.invoke_runs))
    if not args.no_docker:
        figures.update(bench_docker(args.runs))
    results: dict[str, object] = {
        "date": datetime.date.today().isoformat(), "command": "make bench", "machine": machine(reference_at_start),
        "figures": figures, "peers": peer_table,
    }
    results["slim"] = bench_slim()
    figures.update(bench_matrix(args.runs))
    if not args.no_scaling:
        results["scaling"] = bench_scaling(args.runs)
    RESULTS.write_text(json.dumps(results, indent=2, default=str) + "\n")
    write_docs(json.loads(RESULTS.read_text()))
    print(f"Measured {results['date']} on {results['machine']['cores']} cores ({results['machine']['cpu']}) "
          f"with `make bench`:\n")
    print(tables(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
