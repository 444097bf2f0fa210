"""`make bench`: layerkit's figures, each a ratio of two things measured side by side in one run.

Writes bench/results.json and prints a Markdown table (quoted in the README). A figure that misses its
target is marked, never dropped. Work files go to bench/work/ (ignored by git).

    .venv/bin/python bench/run.py [--runs N] [--synth-runs N] [--invoke-runs N] [--no-scaling]
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import layerkit  # noqa: E402,F401  (first: quiets the jsii Node.js banner)
from layerkit.archive import unzipped_size  # noqa: E402
from layerkit.assembly import Assembly, LayerUse  # noqa: E402
from layerkit.interpreters import find_python  # noqa: E402
from layerkit.invoke.layout import prepare_layout  # noqa: E402
from layerkit.invoke.session import open_environment  # noqa: E402
from layerkit.targets import Target  # noqa: E402

WORK = ROOT / "bench" / "work"
RESULTS = ROOT / "bench" / "results.json"
MY_LAYER = ROOT / "layers" / "my_layer"
VENV_BIN = Path(sys.executable).parent
TARGET = Target("python3.12", "x86_64")
ORDER_FUNCTION = "lambda-layers-example-order-total/Function"
ORDER_EVENT = (ROOT / "lambdas" / "order_total" / "events" / "order.json").read_bytes()


def log(message: str) -> None:
    print(f"bench: {message}", file=sys.stderr, flush=True)


def fresh(name: str) -> Path:
    path = WORK / name
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    return path


def run(command: list[str], **kwargs: object) -> float:
    """Wall time of a command that must succeed."""
    started = time.perf_counter()
    proc = subprocess.run(command, capture_output=True, text=True, **kwargs)  # type: ignore[call-overload]
    elapsed = time.perf_counter() - started
    if proc.returncode != 0:
        raise SystemExit(f"bench: {' '.join(command[:4])}... failed:\n{proc.stderr[-2000:]}")
    return elapsed


def median(values: list[float]) -> float:
    return statistics.median(values)


def figure(kit: float, baseline: float, target: str, passed: bool, unit: str, **extra: object) -> dict[str, object]:
    return {"kit": kit, "baseline": baseline, "ratio": round(kit / baseline, 4) if baseline else None,
            "unit": unit, "target": target, "pass": passed, **extra}


# -- layer builds ------------------------------------------------------------------------------------
def machine_python() -> str:
    """The interpreter a user runs `pip` with: python3 on PATH outside this project's virtual environment."""
    path = os.pathsep.join(p for p in os.environ["PATH"].split(os.pathsep) if Path(p) != VENV_BIN)
    found = shutil.which("python3", path=path)
    if not found:
        raise SystemExit("bench: no python3 on PATH for the manual step")
    return found


def manual_step(requirements: Path, name: str) -> tuple[float, Path]:
    """The seed's manual step: `pip install -r requirements.txt -t python/` with the machine's pip, then zip."""
    work = fresh(name)
    env = {**os.environ, "PIP_CACHE_DIR": str(work / "pip-cache"), "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    started = time.perf_counter()
    run([machine_python(), "-m", "pip", "install", "-q", "-r", str(requirements), "-t", str(work / "python")],
        env=env)
    shutil.copytree(MY_LAYER / "python", work / "python", dirs_exist_ok=True)
    run(["zip", "-qr", str(work / "layer.zip"), "python"], cwd=work)
    return time.perf_counter() - started, work / "layer.zip"


def kit_build(layer: Path, name: str, *, cache: Path | None = None, uv_cache: Path | None = None,
              arch: str = "x86_64", bytecode: bool = True) -> tuple[float, dict[str, object]]:
    """`layerkit build` as a user runs it: a fresh process, empty caches unless given."""
    work = WORK / name
    cache = cache or fresh(f"{name}-cache")
    uv_cache = uv_cache or fresh(f"{name}-uv-cache")
    env = {**os.environ, "UV_CACHE_DIR": str(uv_cache)}
    command = [str(VENV_BIN / "layerkit"), "build", str(layer), "--runtime", "python3.12", "--arch", arch,
               "--json", "--cache-dir", str(cache), "--out", str(work / "layer.zip")]
    if not bytecode:
        command.append("--no-bytecode")
    started = time.perf_counter()
    proc = subprocess.run(command, capture_output=True, text=True, env=env)
    elapsed = time.perf_counter() - started
    if proc.returncode != 0:
        raise SystemExit(f"bench: layerkit build failed:\n{proc.stderr}")
    return elapsed, json.loads(proc.stdout)


def bench_layer_builds(runs: int) -> dict[str, dict[str, object]]:
    requirements = MY_LAYER / "requirements.txt"
    kit_cold, manual_cold, kit_warm, kit_warm_inside = [], [], [], []
    kit_result: dict[str, object] = {}
    manual_zip = Path()
    for i in range(runs):
        log(f"layer build {i + 1}/{runs}: manual step (empty pip cache), then layerkit (empty caches)")
        seconds, manual_zip = manual_step(requirements, "manual")
        manual_cold.append(seconds)
        seconds, kit_result = kit_build(MY_LAYER, "kit")
        kit_cold.append(seconds)
        seconds, warm = kit_build(MY_LAYER, "kit-warm", cache=WORK / "kit-cache", uv_cache=WORK / "kit-uv-cache")
        assert warm["cache"] == "hit"
        kit_warm.append(seconds)
        kit_warm_inside.append(float(warm["seconds"]))  # build_layer's own time: what `cdk synth` pays per layer
    first, second = (kit_build(MY_LAYER, f"determinism-{n}")[1] for n in ("a", "b"))
    kit_zip = Path(str(kit_result["zip"]))
    cold = median(kit_cold)
    return {
        "layer_build_cold": figure(cold, median(manual_cold), "ratio <= 0.33", cold / median(manual_cold) <= 0.33,
                                   "s", runs=runs, kit_runs=kit_cold, baseline_runs=manual_cold,
                                   baseline_command=f"{machine_python()} -m pip install -r requirements.txt "
                                                    "-t python/ && zip -qr layer.zip python"),
        "layer_build_warm": figure(median(kit_warm), cold, "under 0.3 s and ratio <= 0.05",
                                   median(kit_warm) < 0.3 and median(kit_warm) / cold <= 0.05, "s", runs=runs,
                                   kit_runs=kit_warm, note="baseline: the kit's cold build"),
        "layer_build_warm_in_synth": figure(median(kit_warm_inside), cold, "none (what a synth pays per layer)",
                                            None, "s", runs=runs, kit_runs=kit_warm_inside,
                                            note="the same cache hits, timed inside build_layer (no process start)"),
        "layer_zip_bytes": figure(kit_zip.stat().st_size, manual_zip.stat().st_size, "ratio <= 1.0",
                                  kit_zip.stat().st_size <= manual_zip.stat().st_size, "B"),
        "layer_unzipped_bytes": figure(unzipped_size(kit_zip), unzipped_size(manual_zip), "ratio <= 1.0",
                                       unzipped_size(kit_zip) <= unzipped_size(manual_zip), "B"),
        "layer_determinism": {"identical": first["sha256"] == second["sha256"], "sha256": [first["sha256"],
                              second["sha256"]], "target": "identical", "pass": first["sha256"] == second["sha256"]},
    }


# -- synth -----------------------------------------------------------------------------------------
def cdk_synth(app_command: str | None, outdir: Path, env: dict[str, str]) -> float:
    command = ["npx", "cdk", "synth", "--quiet", "-o", str(outdir)]
    if app_command:
        command += ["-a", app_command]
    return run(command, cwd=ROOT, env=env)


def bench_synth(runs: int) -> dict[str, dict[str, object]]:
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
        log(f"synth {i + 1}/{runs}: example app (warm layer cache), then the same app with prebuilt layers")
        kit_times.append(cdk_synth(None, kit_out, env))
        plain_times.append(cdk_synth(plain_app, WORK / "synth-plain", plain_env))
    ratio = median(kit_times) / median(plain_times)
    return {"synth_overhead": figure(median(kit_times), median(plain_times), "ratio <= 1.15", ratio <= 1.15, "s",
                                     runs=runs, kit_runs=kit_times, baseline_runs=plain_times)}


# -- invoke ----------------------------------------------------------------------------------------
def floor_cold(function: object, layout: object, python: Path) -> float:
    """The same interpreter importing the handler and calling it once, outside any sandbox."""
    code = (f"import json, sys; sys.path[:0] = [{str(layout.task)!r}, {str(layout.opt / 'python')!r}]\n"
            f"import {function.handler.rsplit('.', 1)[0]} as h\n"
            f"h.{function.handler.rsplit('.', 1)[1]}(json.loads({ORDER_EVENT.decode()!r}), None)\n")
    return run([str(python), "-I", "-S", "-B", "-c", code])


def floor_warm(function: object, layout: object, python: Path, calls: int) -> list[float]:
    code = (f"import json, sys, time; sys.path[:0] = [{str(layout.task)!r}, {str(layout.opt / 'python')!r}]\n"
            f"import handler\nevent = json.loads({ORDER_EVENT.decode()!r})\nhandler.handler(event, None)\n"
            f"out = []\nfor _ in range({calls}):\n    t = time.perf_counter(); handler.handler(event, None)\n"
            f"    out.append(time.perf_counter() - t)\nprint(json.dumps(out))\n")
    proc = subprocess.run([str(python), "-I", "-S", "-B", "-c", code], capture_output=True, text=True, check=True)
    return json.loads(proc.stdout)


def sandbox_cold(function: object, runs: int) -> tuple[list[float], list[float]]:
    """Wall time from starting the sandbox to the response, and the REPORT's Init Duration."""
    walls, inits = [], []
    for _ in range(runs):
        with open_environment(function, backend="sandbox") as environment:
            started = time.perf_counter()
            result = environment.invoke(ORDER_EVENT)
            walls.append(time.perf_counter() - started)
            assert result.ok, result.body
            inits.append((result.init_ms or 0) / 1000)
    return walls, inits


def bench_invoke(runs: int) -> dict[str, dict[str, object]]:
    assembly = Assembly.load(WORK / "synth-kit")
    function = assembly.function(ORDER_FUNCTION)
    layout = prepare_layout(function)
    python = find_python("3.12")
    sandbox_cold(function, 1)  # prepares the runtime folder and warms the page cache
    walls, floors = [], []
    for i in range(runs):
        log(f"invoke cold {i + 1}/{runs}: sandbox, then the floor")
        walls += sandbox_cold(function, 1)[0]
        floors.append(floor_cold(function, layout, python))
    with open_environment(function, backend="sandbox") as environment:
        environment.invoke(ORDER_EVENT)
        warm = []
        for _ in range(runs):
            started = time.perf_counter()
            environment.invoke(ORDER_EVENT)
            warm.append(time.perf_counter() - started)
    warm_floor = floor_warm(function, layout, python, runs)
    cold, floor = median(walls), median(floors)
    return {
        "invoke_cold": figure(cold, floor, "kit <= 1.5 x floor + 60 ms", cold <= 1.5 * floor + 0.060, "s", runs=runs,
                              kit_runs=walls, baseline_runs=floors,
                              note="baseline: python3.12 importing the handler and calling it once"),
        "invoke_warm": figure(median(warm), median(warm_floor), "median under 5 ms", median(warm) < 0.005, "s",
                              runs=runs, kit_runs=warm,
                              note="baseline: the same handler called again in one process (no Runtime API)"),
    }


def bench_bytecode(runs: int) -> dict[str, dict[str, object]]:
    """Cold start with the layer as built without .pyc vs with the kit's deterministic .pyc."""
    function = Assembly.load(WORK / "synth-kit").function(ORDER_FUNCTION)
    variants = {}
    for bytecode in (False, True):
        _, built = kit_build(MY_LAYER, f"pyc-{bytecode}", bytecode=bytecode, uv_cache=WORK / "kit-uv-cache")
        zip_path = Path(str(built["zip"]))
        layers = tuple(
            LayerUse(dataclasses.replace(use.layer, asset=zip_path), use.via) if use.layer.name == "my_layer"
            else use for use in function.layers
        )
        variants[bytecode] = (dataclasses.replace(function, layers=layers), zip_path)
    inits: dict[bool, list[float]] = {False: [], True: []}
    for i in range(runs):
        log(f"cold start imports {i + 1}/{runs}: layer without .pyc, then with")
        for bytecode, (variant, _) in variants.items():
            inits[bytecode] += sandbox_cold(variant, 1)[1]
    with_pyc, without = median(inits[True]), median(inits[False])
    sizes = {b: (z.stat().st_size, unzipped_size(z)) for b, (_, z) in variants.items()}
    return {"cold_start_import": figure(
        with_pyc, without, "report both; the better default wins", with_pyc < without, "s", runs=runs,
        kit_runs=inits[True], baseline_runs=inits[False],
        zipped_bytes={"with_pyc": sizes[True][0], "without_pyc": sizes[False][0]},
        unzipped_bytes={"with_pyc": sizes[True][1], "without_pyc": sizes[False][1]},
        note="kit: .pyc compiled with --invalidation-mode unchecked-hash (the default); baseline: no .pyc; "
             "time: Init Duration inside the sandbox (runtime start + the function's imports)")}


def bench_scaling(runs: int) -> dict[str, object]:
    rows = []
    for deps in (1, 5, 20):
        layer = fresh(f"scaling-{deps}")
        (layer / "python").mkdir()
        shutil.copy(ROOT / "bench" / "scaling" / f"deps-{deps}.txt", layer / "requirements.txt")
        for arch in ("x86_64", "arm64"):
            uv_cache = WORK / "scaling-uv-cache"
            kit_build(layer, f"scaling-prime-{deps}-{arch}", arch=arch, uv_cache=uv_cache)  # downloads once
            times, built = [], {}
            for _ in range(runs):
                seconds, built = kit_build(layer, f"scaling-{deps}-{arch}", arch=arch, uv_cache=uv_cache)
                times.append(seconds)
            rows.append({"dependencies": deps, "packages": len(built["packages"]), "architecture": arch,
                         "build_s": median(times), "zipped_bytes": built["zipped_bytes"],
                         "unzipped_bytes": built["unzipped_bytes"]})
            log(f"scaling: {deps} deps {arch}: {median(times):.2f} s, {built['zipped_bytes'] / 1e6:.1f} MB zipped")
    return {"rows": rows, "note": "layerkit build with an empty layer cache and a warm uv download cache, "
                                  "bytecode on; median of the runs"}


# -- report ----------------------------------------------------------------------------------------
def fmt(value: object, unit: str) -> str:
    if not isinstance(value, int | float):
        return str(value)
    if unit == "s":
        return f"{value * 1000:.1f} ms" if value < 1 else f"{value:.2f} s"
    return f"{value / 1e6:.2f} MB"


MET = {True: "yes", False: "**no**", None: "-"}


def table(results: dict[str, object]) -> str:
    lines = ["| figure | kit | baseline | ratio | target | met |", "|---|---|---|---|---|---|"]
    for key, data in results["figures"].items():
        if "identical" in data:
            lines.append(f"| {key} | sha256 {data['sha256'][0][:12]} | sha256 {data['sha256'][1][:12]} | - | "
                         f"{data['target']} | {'yes' if data['pass'] else '**no**'} |")
            continue
        lines.append(f"| {key} | {fmt(data['kit'], data['unit'])} | {fmt(data['baseline'], data['unit'])} | "
                     f"{data['ratio']:.3f} | {data['target']} | {MET[data['pass']]} |")
    if scaling := results.get("scaling"):
        lines += ["", "| dependencies (locked packages) | arch | build | zipped | unzipped |", "|---|---|---|---|---|"]
        for row in scaling["rows"]:
            lines.append(f"| {row['dependencies']} ({row['packages']}) | {row['architecture']} | "
                         f"{fmt(row['build_s'], 's')} | {fmt(row['zipped_bytes'], 'B')} | "
                         f"{fmt(row['unzipped_bytes'], 'B')} |")
    return "\n".join(lines)


def machine() -> dict[str, object]:
    model = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                  if line.startswith("model name")), platform.processor())
    return {"cores": os.cpu_count(), "cpu": model, "python": platform.python_version(), "system": platform.platform()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="repetitions per figure (median reported)")
    parser.add_argument("--synth-runs", type=int, default=3, help="repetitions of each cdk synth")
    parser.add_argument("--invoke-runs", type=int, default=10, help="repetitions of each invoke figure")
    parser.add_argument("--no-scaling", action="store_true", help="skip the 1/5/20 dependencies check")
    args = parser.parse_args()
    WORK.mkdir(parents=True, exist_ok=True)
    figures: dict[str, object] = {}
    figures.update(bench_layer_builds(args.runs))
    figures.update(bench_synth(args.synth_runs))
    figures.update(bench_invoke(args.invoke_runs))
    figures.update(bench_bytecode(args.invoke_runs))
    results: dict[str, object] = {
        "date": datetime.date.today().isoformat(),
        "command": "make bench",
        "machine": machine(),
        "figures": figures,
    }
    if not args.no_scaling:
        results["scaling"] = bench_scaling(3)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    print(f"Measured {results['date']} on {results['machine']['cores']} cores ({results['machine']['cpu']}) "
          f"with `make bench`:\n")
    print(table(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
