"""The ``layerkit`` command: a thin layer over the kit's modules.

A mistake a user can make ends with one line on stderr and a non-zero exit; ``--debug`` shows the traceback.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from layerkit.errors import LayerkitError

EXIT_ERROR = 1
EXIT_USAGE = 2


def _human(size: int) -> str:
    value = float(size)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    raise AssertionError("unreachable")


def cmd_build(args: argparse.Namespace) -> int:
    from layerkit.build import build_source, report_to_stderr
    from layerkit.rules import ON_COMMAND_LINE
    from layerkit.slim import Slim
    from layerkit.sources import SourceFolder
    from layerkit.targets import Target

    if args.workers is not None and args.workers < 1:
        raise LayerkitError(f"--workers must be 1 or more, not {args.workers}")
    slim = Slim(tests="tests" in args.slim, debug_symbols="debug-symbols" in args.slim, without=tuple(args.without))
    runtimes, architectures = list(dict.fromkeys(args.runtime)), list(dict.fromkeys(args.arch))
    source = SourceFolder.layer(args.layer_dir, tuple(args.exclude))
    if len(runtimes) > 1 or len(architectures) > 1:
        return _build_variants(args, source, runtimes, architectures, slim)
    target = Target(runtimes[0], architectures[0])
    build = build_source(source, target, cache_dir=args.cache_dir, report=report_to_stderr, bytecode=args.bytecode,
                         workers=args.workers, slim=slim, spelling=ON_COMMAND_LINE)
    if args.out:
        _copy_out(build.zip, Path(args.out))
    result = build.to_json()
    if args.out:
        result["zip"] = str(Path(args.out))
    if args.json:
        print(json.dumps(result, indent=2, sort_keys=True))
    else:
        print(
            f"{build.name}: {result['zip']} ({_human(build.zipped_bytes)} zipped, "
            f"{_human(build.unzipped_bytes)} unzipped) sha256 {build.sha256} [{build.cache}, {build.builder}]"
        )
    return 0


def _copy_out(zip_path: Path, out: Path) -> None:
    import shutil

    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    try:
        shutil.copyfile(zip_path, partial)  # the OS's copy (copy_file_range, clonefile): no pass through Python
        partial.replace(out)  # never a half-written zip at --out
    finally:
        partial.unlink(missing_ok=True)


def _build_variants(args: argparse.Namespace, source: Any, runtimes: list[str], architectures: list[str],
                    slim: Any) -> int:
    """Several runtimes or architectures: one zip per version the layer needs (:mod:`layerkit.variants`)."""
    from layerkit.build import report_to_stderr
    from layerkit.cache import resolve_cache_dir
    from layerkit.variants import build_variants

    builds = build_variants(source, runtimes, architectures, cache_dir=resolve_cache_dir(args.cache_dir),
                            report=report_to_stderr, bytecode=args.bytecode, workers=args.workers, slim=slim)
    results = []
    for build in builds:
        result = build.to_json()
        if args.out:
            out = Path(args.out) / f"{source.name}-{build.variant.key}.zip"
            _copy_out(build.zip, out)
            result["zip"] = str(out)
        results.append(result)
    if args.json:
        print(json.dumps({"name": source.name, "versions": results}, indent=2, sort_keys=True))
    else:
        for result in results:
            print(f"{source.name} ({'/'.join(result['architectures'])}; {', '.join(result['runtimes'])}): "
                  f"{result['zip']} ({_human(result['zipped_bytes'])} zipped, {_human(result['unzipped_bytes'])} "
                  f"unzipped) sha256 {result['sha256']} [{result['cache']}]")
    return 0


def cmd_describe(args: argparse.Namespace) -> int:
    from layerkit.archive import unzipped_size
    from layerkit.assembly import Assembly

    assembly = Assembly.load(args.assembly)
    rows: dict[str, list[dict[str, Any]]] = {"stacks": [], "layers": [], "functions": []}
    for stack in assembly.stacks.values():
        rows["stacks"].append({"name": stack.name, "depends_on": stack.dependencies})
    for layer in assembly.layers():
        is_zip = layer.asset.is_file()
        rows["layers"].append({
            "id": layer.id, "name": layer.name, "asset": layer.asset.name, "s3_key": layer.s3_key,
            "zipped_bytes": layer.asset.stat().st_size if is_zip else None,  # a folder is zipped by the CLI
            "unzipped_bytes": unzipped_size(layer.asset),
            "runtimes": list(layer.runtimes), "architectures": list(layer.architectures),
        })
    for fn in assembly.functions():
        code_bytes = unzipped_size(fn.code)
        rows["functions"].append({
            "id": fn.id, "handler": fn.handler, "runtime": fn.runtime, "architecture": fn.architecture,
            "memory_mb": fn.memory_mb, "timeout_s": fn.timeout_s,
            "code_zipped_bytes": fn.code.stat().st_size if fn.code.is_file() else None,
            "code_unzipped_bytes": code_bytes,
            # What Lambda counts against its 250 MB: the code, its own dependencies included, and every layer.
            "total_unzipped_bytes": code_bytes + sum(unzipped_size(use.layer.asset) for use in fn.layers
                                                     if use.layer.asset is not None),
            "layers": [{"layer": use.layer.id, "name": use.layer.name, "via": use.via,
                        "owned_elsewhere": bool(use.layer.owned_elsewhere)} for use in fn.layers],
        })
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    print(f"Cloud assembly {args.assembly}:")
    for stack in rows["stacks"]:
        after = f" (deploys after {', '.join(stack['depends_on'])})" if stack["depends_on"] else ""
        print(f"  stack {stack['name']}{after}")
    for layer in rows["layers"]:
        size = (f"{_human(layer['zipped_bytes'])} zipped, {_human(layer['unzipped_bytes'])} unzipped"
                if layer["zipped_bytes"] is not None else f"{_human(layer['unzipped_bytes'])} folder")
        print(f"  layer {layer['name']:<14} {layer['id']}: {size}, asset {layer['s3_key'][:16]}, "
              f"{'/'.join(layer['runtimes'])} {'/'.join(layer['architectures'])}")
    for fn in rows["functions"]:
        uses = ", ".join(f"{u['name']} (via {u['via']}{', owned elsewhere' if u['owned_elsewhere'] else ''})"
                         for u in fn["layers"]) or "no layers"
        elsewhere = " (without the layers owned elsewhere)" if any(u["owned_elsewhere"] for u in fn["layers"]) else ""
        print(f"  function {fn['id']}: {fn['handler']} {fn['runtime']} {fn['architecture']} "
              f"{fn['memory_mb']} MB {fn['timeout_s']} s; code {_human(fn['code_unzipped_bytes'])} unzipped, "
              f"{_human(fn['total_unzipped_bytes'])} with its layers{elsewhere} (Lambda allows 262.1 MB); layers: "
              f"{uses}")
    return 0


def cmd_invoke(args: argparse.Namespace) -> int:
    from layerkit.assembly import Assembly
    from layerkit.invoke import Invocation, invoke_function, read_events
    from layerkit.invoke.environment import parse_overrides
    from layerkit.invoke.freshness import stale_folders

    if args.synth:
        from layerkit.synth import synthesize

        print(f"layerkit: synthesizing the app into {args.assembly}", file=sys.stderr, flush=True)
        synthesize(Path.cwd(), Path(args.assembly))
    assembly = Assembly.load(args.assembly)
    if args.list:
        for fn in assembly.functions():
            layers = ", ".join(use.layer.name for use in fn.layers) or "no layers"
            print(f"{fn.id}\t{fn.handler}\t{fn.runtime}\t{fn.architecture}\t{layers}")
        return 0
    if not args.function:
        raise LayerkitError("name the function to invoke as STACK/FUNCTION_ID; 'layerkit invoke --list' lists them")
    if args.repeat < 1:
        raise LayerkitError(f"--repeat must be 1 or more, not {args.repeat}")
    from layerkit.invoke import remote

    function = remote.resolve(assembly.function(args.function), layer_paths=remote.parse_layer_paths(args.layer),
                              layers_from=args.layers_from or (), cache_dir=args.cache_dir)
    events = read_events(args.event)  # all of them, before anything runs
    if stale := stale_folders(function):
        print(f"layerkit: warning: {', '.join(stale)} changed since {args.assembly} was synthesized: this invoke "
              "runs the synthesized code; pass --synth to synthesize first", file=sys.stderr, flush=True)
    overrides = parse_overrides(args.env)
    if missing := [name for name in function.unresolved_environment if name not in overrides]:
        print(f"layerkit: warning: no local value for {', '.join(missing)}: CloudFormation sets it at deploy time "
              f"(a reference to a resource); pass --env {missing[0]}=... to set it locally", file=sys.stderr)

    def print_response(result: Invocation) -> None:
        sys.stdout.buffer.write(result.body.rstrip(b"\n") + b"\n")
        sys.stdout.flush()

    results = invoke_function(
        function, events, backend=args.backend, env_overrides=overrides, timeout_s=args.timeout,
        repeat=args.repeat, cache_dir=args.cache_dir, network=args.network, on_result=print_response,
    )
    return 0 if all(result.ok for result in results) else EXIT_ERROR


def cmd_check_upgrade(args: argparse.Namespace) -> int:
    from layerkit.assembly import Assembly
    from layerkit.upgrade import check_upgrade, deployed_assembly, render

    if args.against_deployed:
        if len(args.assemblies) != 1:
            raise LayerkitError("with --against-deployed, give one assembly: the one about to be deployed")
        after = Assembly.load(args.assemblies[0])
        before = deployed_assembly(after)
    else:
        if len(args.assemblies) != 2:
            raise LayerkitError("give two assemblies, BEFORE (deployed) and AFTER (about to be), "
                                "or one with --against-deployed")
        before, after = (Assembly.load(path) for path in args.assemblies)
    report = check_upgrade(before, after)
    print(json.dumps(report.to_json(), indent=2) if args.json else render(report))
    return EXIT_ERROR if report.blocked else 0


def cmd_sam_template(args: argparse.Namespace) -> int:
    from layerkit.assembly import Assembly
    from layerkit.sam import sam_template

    assembly = Assembly.load(args.assembly)
    out = Path(args.output) if args.output else None
    template = sam_template(assembly, args.stack, out.parent if out else Path.cwd())
    text = json.dumps(template, indent=1) + "\n"
    if out is None:
        sys.stdout.write(text)
    else:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text)
        print(f"layerkit: wrote {out}: sam local invoke -t {out} <function logical id>", file=sys.stderr)
    return 0


def build_parser() -> argparse.ArgumentParser:
    from layerkit import __version__
    from layerkit.targets import ARCHITECTURES, RUNTIMES

    parser = argparse.ArgumentParser(prog="layerkit", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"layerkit {__version__}")
    parser.add_argument("--debug", action="store_true", help="show the traceback of an error")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    build = sub.add_parser("build", help="build one layer folder into a zip, without Docker")
    build.add_argument("layer_dir", metavar="LAYER_DIR", help="folder with python/ and requirements.txt")
    build.add_argument("--runtime", required=True, action="append", choices=list(RUNTIMES),
                       help="Lambda runtime (repeat it for a layer of several: one zip per version it needs)")
    build.add_argument("--arch", required=True, action="append", choices=list(ARCHITECTURES),
                       help="Lambda architecture (repeatable, as --runtime)")
    build.add_argument("--out", metavar="FILE.zip", help="copy the layer zip here")
    build.add_argument("--json", action="store_true", help="print one JSON object describing the build")
    build.add_argument("--no-bytecode", dest="bytecode", action="store_false",
                       help="ship no .pyc (default: compile them with a Python of the runtime's version)")
    build.add_argument("--cache-dir", type=Path, default=None, help="default: $LAYERKIT_CACHE_DIR or ~/.cache/layerkit")
    build.add_argument("--workers", type=int, default=None, metavar="N",
                       help="processes and threads to compile and compress with (default: one per core); the zip is "
                            "the same whatever N")
    build.add_argument("--exclude", action="append", default=[], metavar="PATTERN",
                       help="a glob pattern of python/ that never deploys (repeatable), beside the never-deploy list")
    build.add_argument("--slim", action="append", default=[], choices=["tests", "debug-symbols"],
                       help="leave the packages' tests/ folders, or their .so files' debug symbols, out (repeatable)")
    build.add_argument("--without", action="append", default=[], metavar="DISTRIBUTION",
                       help="leave a distribution out, e.g. boto3 (the runtime's own copy then applies; repeatable)")
    build.set_defaults(func=cmd_build)

    describe = sub.add_parser("describe", help="list the stacks, layers and functions of a synthesized app")
    describe.add_argument("--assembly", default="cdk.out", help="cloud assembly folder (default: cdk.out)")
    describe.add_argument("--json", action="store_true")
    describe.set_defaults(func=cmd_describe)

    invoke = sub.add_parser(
        "invoke", help="run a synthesized function locally with its layers, as Lambda would",
        description="Run a function of the cloud assembly with its code at /var/task and its layers merged at "
                    "/opt: in the Lambda base image where Docker answers, else in a bubblewrap sandbox. The "
                    "response goes to stdout (one JSON document per invoke), logs and REPORT lines to stderr.",
    )
    invoke.add_argument("function", nargs="?", metavar="STACK/FUNCTION_ID",
                        help="e.g. my-stack/Function (see --list)")
    invoke.add_argument("--assembly", default="cdk.out", help="cloud assembly folder (default: cdk.out)")
    invoke.add_argument("--list", action="store_true", help="list the functions that can be invoked")
    invoke.add_argument("--event", action="append", metavar="FILE|-",
                        help="event JSON file, or - for stdin; repeat for several events (default: {})")
    invoke.add_argument("--env", action="append", metavar="KEY=VALUE", help="set or override a variable")
    invoke.add_argument("--timeout", type=float, metavar="S", help="default: the function's timeout")
    invoke.add_argument("--repeat", type=int, default=1, metavar="N",
                        help="invoke N times in one warm environment (default: 1)")
    invoke.add_argument("--backend", choices=["auto", "sandbox", "docker"], default="auto",
                        help="auto (default): docker where a daemon answers, else sandbox")
    invoke.add_argument("--network", choices=["sandbox", "host", "none"], default="sandbox",
                        help="the sandbox's network: sandbox (default: its own, the internet but never this "
                             "machine), host (this machine's: to reach a local emulator on 127.0.0.1), none")
    invoke.add_argument("--layers-from", action="append", metavar="OTHER_CDK_OUT",
                        help="the assembly of the app that publishes a layer this function uses (repeatable)")
    invoke.add_argument("--layer", action="append", metavar="NAME=PATH",
                        help="the zip or folder of a layer owned elsewhere, by its SSM parameter or ARN (repeatable)")
    invoke.add_argument("--synth", action="store_true",
                        help="synthesize the app of this folder (cdk.json) into --assembly first")
    invoke.add_argument("--cache-dir", type=Path, default=None, help=argparse.SUPPRESS)
    invoke.set_defaults(func=cmd_invoke)

    upgrade = sub.add_parser(
        "check-upgrade", help="before a deploy: layers that get a new version, exports that would lock",
        description="Compare the assembly deployed (BEFORE) with the one about to be (AFTER). Exit 1 when an "
                    "export that another stack imports would change or disappear: CloudFormation would refuse.",
    )
    upgrade.add_argument("assemblies", nargs="+", metavar="ASSEMBLY",
                         help="BEFORE AFTER, or one with --against-deployed")
    upgrade.add_argument("--against-deployed", action="store_true",
                         help="read BEFORE from CloudFormation (needs boto3 and AWS credentials)")
    upgrade.add_argument("--json", action="store_true")
    upgrade.set_defaults(func=cmd_check_upgrade)

    sam = sub.add_parser(
        "sam-template", help="a template of one stack that 'sam local invoke' runs with its layers",
        description="Write the template of STACK with the layer versions its functions use from other stacks copied "
                    "in (with their assets), so that 'sam local invoke' mounts them, whichever sharing mode. For "
                    "local runs only: never deploy it.",
    )
    sam.add_argument("stack", metavar="STACK", help="the stack of the functions, e.g. my-app-orders")
    sam.add_argument("--assembly", default="cdk.out", help="cloud assembly folder (default: cdk.out)")
    sam.add_argument("-o", "--output", metavar="FILE", help="write it here (default: standard output); asset "
                                                             "paths are relative to where it is written")
    sam.set_defaults(func=cmd_sam_template)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except (LayerkitError, OSError) as error:
        if args.debug:
            raise
        if isinstance(error, OSError) and not isinstance(error, LayerkitError):
            where = f": {error.filename}" if error.filename else ""
            error = f"{error.strerror or error}{where} (run with --debug for the traceback)"
        print(f"layerkit: error: {error}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("layerkit: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
