"""The layerkit command: a thin layer over the kit's modules.

A mistake a user can make ends with one line on stderr: exit 1 for an error, 2 for a command line that cannot
be run as written (as uv, pip and argparse do). --debug shows the traceback.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import textwrap
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from layerkit.core.errors import LayerkitError, SynthError, UsageError
from layerkit.core.kit_version import __version__
from layerkit.core.spelling import ON_COMMAND_LINE, speaking

EXIT_ERROR = 1
MIB = 1_048_576  # Lambda's megabyte: its 250 MB is 262,144,000 bytes
EXIT_USAGE = 2


def _human(size: int) -> str:
    value = float(size)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    raise AssertionError("unreachable")


# -- build --------------------------------------------------------------------------------------------------
def _source(args: argparse.Namespace) -> Any:
    """The folder as a layer or a function: as asked, else a function where it holds modules but no python/."""
    # lazy: a command imports only its own steps (see main)
    from layerkit.sources import SourceFolder

    folder = Path(args.folder)
    kind = args.kind
    if kind is None and folder.is_dir() and not (folder / "python").is_dir():
        modules = [p for p in folder.iterdir() if p.suffix == ".py" or (p / "__init__.py").is_file()]
        if modules:
            kind = "function"
            print(f"layerkit: {folder} holds modules and no python/ folder: building it as a function (its code "
                  "at the zip's root); --layer builds it as a layer", file=sys.stderr)
    if kind == "function":
        return SourceFolder.function(folder, tuple(args.exclude))
    return SourceFolder.layer(folder, tuple(args.exclude))


def cmd_build(args: argparse.Namespace) -> int:
    # lazy: a command imports only its own steps (see main)
    from layerkit.assemble.local_build import build_source, report_to_stderr
    from layerkit.core.targets import Target
    from layerkit.installed.slim import Slim

    slim = Slim(tests="tests" in args.slim, debug_symbols="debug-symbols" in args.slim, without=tuple(args.without))
    runtimes, architectures = list(dict.fromkeys(args.runtime)), list(dict.fromkeys(args.arch))
    source = _source(args)
    several = len(runtimes) > 1 or len(architectures) > 1
    if several and args.builder == "docker":
        raise UsageError("--builder docker builds one target: give one --runtime and one --arch")
    if several:
        return _build_variants(args, source, runtimes, architectures, slim)
    target = Target(runtimes[0], architectures[0])
    out = _file_to_write("--out", args.out, f"{source.name}.zip") if args.out else None
    if args.builder == "docker":
        from layerkit.constructs.code import build_in_docker  # lazy: the CDK, only for the Docker builder

        build = build_in_docker(source, target, bytecode=args.bytecode, slim=slim, network=args.docker_network,
                                cache_dir=args.cache_dir)
    else:
        build = build_source(source, target, cache_dir=args.cache_dir, report=report_to_stderr,
                             bytecode=args.bytecode, workers=args.workers, slim=slim)
    result = build.to_json()
    if out is not None:
        _copy_out(build.zip, out)
        result["zip"] = str(out)
    if args.json:
        print(json.dumps(result, indent=2, sort_keys=True))
    else:
        print(f"{result['name']}: {result['zip']} ({_human(result['zipped_bytes'])} zipped, "
              f"{_human(result['unzipped_bytes'])} unzipped) sha256 {result['sha256']} "
              f"[{result['cache']}, {result['builder']}]")
    return 0


def _file_to_write(option: str, value: str, example: str) -> Path:
    """The file ``option`` names, checked before any work: a folder there cannot be replaced by a file."""
    path = Path(value)
    if path.is_dir():
        raise UsageError(f"{option} {value} is a folder; give the path of the file to write, e.g. "
                         f"{option} {path / example}")
    return path


def _copy_out(zip_path: Path, out: Path) -> None:
    import shutil  # lazy: only --out copies (~6 ms)

    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    try:
        shutil.copyfile(zip_path, partial)  # the OS's copy (copy_file_range, clonefile): no pass through Python
        partial.replace(out)  # never a half-written zip at --out
    finally:
        partial.unlink(missing_ok=True)


def _build_variants(args: argparse.Namespace, source: Any, runtimes: list[str], architectures: list[str],
                    slim: Any) -> int:
    """Several runtimes or architectures: one zip per version the layer needs (:mod:`layerkit.assemble.matrix`)."""
    # lazy: a command imports only its own steps (see main)
    from layerkit.assemble.local_build import report_to_stderr
    from layerkit.assemble.matrix import build_variants
    from layerkit.core.cache import resolve_cache_dir
    from layerkit.core.targets import Destination

    if source.destination is not Destination.LAYER:
        raise UsageError("a function runs on one runtime and architecture: give one --runtime and one --arch")
    if args.out and Path(args.out).exists() and not Path(args.out).is_dir():
        raise UsageError(f"--out {args.out} is a file; with several --runtime or --arch it names the folder that "
                         "gets one zip per version")
    builds = build_variants(source, runtimes, architectures, cache_dir=resolve_cache_dir(args.cache_dir),
                            report=report_to_stderr, bytecode=args.bytecode, workers=args.workers, slim=slim)
    results = []
    for build in builds:
        # A version serves several runtimes: its packages are each runtime's.
        result = {**build.to_json(), "packages": build.packages_by_runtime}
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


# -- describe, check ----------------------------------------------------------------------------------------
def cmd_describe(args: argparse.Namespace) -> int:
    # lazy: a command imports only its own steps (see main)
    from layerkit.assembly import Assembly
    from layerkit.assembly.assets import AssetContent
    from layerkit.core.targets import RUNTIME_SDK
    from layerkit.rules.limits import MAX_UNZIPPED_BYTES

    assembly = Assembly.load(args.assembly)
    contents: dict[Path, AssetContent] = {}

    def unzipped_size(asset: Path, what: str) -> int:
        if asset not in contents:
            contents[asset] = AssetContent(asset, what)
        return contents[asset].unzipped_bytes

    rows: dict[str, list[dict[str, Any]]] = {"stacks": [], "layers": [], "functions": []}
    for stack in assembly.stacks.values():
        rows["stacks"].append({"name": stack.name, "depends_on": stack.dependencies})
    for layer in assembly.layers():
        if layer.asset is None:
            continue
        is_zip = layer.asset.is_file()
        rows["layers"].append({
            "id": layer.id, "name": layer.name, "asset": layer.asset.name, "s3_key": layer.s3_key,
            "zipped_bytes": layer.asset.stat().st_size if is_zip else None,  # a folder is zipped by the CLI
            "unzipped_bytes": unzipped_size(layer.asset, f"layer {layer.id}"),
            "runtimes": list(layer.runtimes), "architectures": list(layer.architectures),
        })
    for fn in assembly.functions():
        code_bytes = unzipped_size(fn.code, f"function {fn.id}")
        rows["functions"].append({
            "id": fn.id, "handler": fn.handler, "runtime": fn.runtime, "architecture": fn.architecture,
            "memory_mb": fn.memory_mb, "timeout_s": fn.timeout_s,
            "code_zipped_bytes": fn.code.stat().st_size if fn.code.is_file() else None,
            "code_unzipped_bytes": code_bytes,
            # What Lambda counts against its 250 MB: the code, its own dependencies included, and every layer.
            "total_unzipped_bytes": code_bytes + sum(unzipped_size(use.layer.asset, f"layer {use.layer.id}")
                                                     for use in fn.layers if use.layer.asset is not None),
            "layers": [{"layer": use.layer.id, "name": use.layer.name, "via": use.via,
                        "owned_elsewhere": bool(use.layer.owned_elsewhere)} for use in fn.layers],
            # What Lambda's runtime provides beside them (and local invoke with it), behind their own copies.
            "runtime_provides": RUNTIME_SDK.get(fn.runtime, {}),
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
              f"{fn['total_unzipped_bytes'] / MIB:.1f} MB with its layers{elsewhere} (Lambda allows "
              f"{MAX_UNZIPPED_BYTES // MIB} MB); layers: "
              f"{uses}; the runtime provides "
              f"{', '.join(f'{n} {v}' for n, v in fn['runtime_provides'].items()) or 'an SDK the kit does not know'}")
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    # lazy: a command imports only its own steps (see main)
    from layerkit.assembly import Assembly
    from layerkit.checks.guardrails import assembly_findings
    from layerkit.rules.findings import Severity

    findings = assembly_findings(Assembly.load(args.assembly))
    if args.json:
        print(json.dumps([{"path": path, "severity": f.severity.value, "rule": f"layerkit:{f.rule}",
                           "message": f.message} for path, f in findings], indent=2))
    else:
        for path, finding in findings:
            print(f"{finding.severity.value}: {path}: [layerkit:{finding.rule}] {finding.message}")
        errors = sum(1 for _, f in findings if f.severity is Severity.ERROR)
        print(f"layerkit check: {args.assembly}: {errors} error(s), {len(findings) - errors} warning(s) and note(s)",
              file=sys.stderr)
    return EXIT_ERROR if any(f.severity is Severity.ERROR for _, f in findings) else 0


# -- invoke, check-upgrade, sam-template --------------------------------------------------------------------
def cmd_invoke(args: argparse.Namespace) -> int:
    # lazy: a command imports only its own steps (see main)
    from layerkit.assembly import Assembly
    from layerkit.invoke import Invocation, invoke_function, read_events
    from layerkit.invoke.preparation import prepare

    if args.synth:
        # lazy: a command imports only its own steps (see main)
        from layerkit.assembly.synth import synthesize

        print(f"layerkit: synthesizing the app into {args.assembly}", file=sys.stderr, flush=True)
        synthesize(Path.cwd(), Path(args.assembly), echo=lambda line: print(line, file=sys.stderr, flush=True))
    assembly = Assembly.load(args.assembly)
    if errors := assembly.errors():  # an app synthesized without the CDK CLI, which would have refused it
        raise SynthError(f"{args.assembly} holds {len(errors)} error(s) of its synth: fix them, synthesize again "
                         "and run again", [f"ERROR {error}" for error in errors])
    if args.list:
        for fn in assembly.functions():
            layers = ", ".join(use.layer.name for use in fn.layers) or "no layers"
            print(f"{fn.id}\t{fn.handler}\t{fn.runtime}\t{fn.architecture}\t{layers}")
        return 0
    if not args.function:
        raise UsageError("name the function to invoke as STACK/FUNCTION_ID; 'layerkit invoke --list' lists them")
    overrides = dict(args.env or ())
    events = read_events(args.event)  # all of them, before anything runs or is said
    function = prepare(assembly, args.function, env_overrides=overrides, layer_paths=dict(args.layer or ()),
                       layers_from=args.layers_from or (), cache_dir=args.cache_dir,
                       warn=lambda line: print(f"layerkit: warning: {line}", file=sys.stderr, flush=True))

    def print_response(result: Invocation) -> None:
        sys.stdout.buffer.write(result.body.rstrip(b"\n") + b"\n")
        sys.stdout.flush()

    results = invoke_function(
        function, events, backend=args.backend, env_overrides=overrides, timeout_s=args.timeout,
        repeat=args.repeat, cache_dir=args.cache_dir, network=args.network, on_result=print_response,
    )
    return 0 if all(result.ok for result in results) else EXIT_ERROR


def cmd_check_upgrade(args: argparse.Namespace) -> int:
    # lazy: a command imports only its own steps (see main)
    from layerkit.assembly import Assembly
    from layerkit.checks.upgrade import (
        check_upgrade,
        deployed_assembly,
        render,
    )

    if args.against_deployed:
        if len(args.assemblies) != 1:
            raise UsageError("with --against-deployed, give one assembly: the one about to be deployed")
        after = Assembly.load(args.assemblies[0])
        before = deployed_assembly(after)
    else:
        if len(args.assemblies) != 2:
            raise UsageError("give two assemblies, BEFORE (deployed) and AFTER (about to be), "
                             "or one with --against-deployed")
        before, after = (Assembly.load(path) for path in args.assemblies)
    report = check_upgrade(before, after)
    print(json.dumps(report.to_json(), indent=2) if args.json else render(report))
    return EXIT_ERROR if report.blocked else 0


def cmd_sam_template(args: argparse.Namespace) -> int:
    # lazy: a command imports only its own steps (see main)
    from layerkit.assembly import Assembly
    from layerkit.assembly.sam_template import sam_template

    out = _file_to_write("--output", args.output, "template.yaml") if args.output else None
    assembly = Assembly.load(args.assembly)
    template = sam_template(assembly, args.stack, out.parent if out else Path.cwd())
    text = json.dumps(template, indent=1) + "\n"
    if out is None:
        sys.stdout.write(text)
    else:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text)
        functions = [logical_id for logical_id, resource in template.get("Resources", {}).items()
                     if resource.get("Type") in ("AWS::Lambda::Function", "AWS::Serverless::Function")]
        for logical_id in functions:
            print(f"layerkit: wrote {out}: sam local invoke -t {out} {logical_id}", file=sys.stderr)
        if not functions:
            print(f"layerkit: wrote {out}; stack {args.stack} holds no function to invoke", file=sys.stderr)
    return 0


# -- the parser ---------------------------------------------------------------------------------------------
def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more, not {value}")
    return value


def _positive_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds, not {value}")
    return value


def _key_value(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"{text!r} is not KEY=VALUE; write e.g. --env LOG_LEVEL=DEBUG")
    return key, value


def _layer_path(text: str) -> tuple[str, Path]:
    name, sep, path = text.rpartition("=")
    if not sep or not name or not path:
        raise argparse.ArgumentTypeError(f"{text!r} is not NAME=PATH; write e.g. "
                                         "--layer /platform/layers/common/arn=layer.zip")
    if not Path(path).exists():
        raise argparse.ArgumentTypeError(f"{path} does not exist; give a layer zip or folder")
    return name, Path(path)


class _Formatter(argparse.RawDescriptionHelpFormatter):
    """Descriptions and examples as written (their line breaks kept), options wrapped to the terminal."""

    def __init__(self, prog: str) -> None:
        super().__init__(prog, max_help_position=32)


class _Command:
    """A command: its one-line summary, its description and examples (``--help``), the function that adds its
    options, and the one that runs it."""

    def __init__(self, summary: str, description: str, examples: str,
                 options: Callable[[argparse.ArgumentParser], None], run: Callable[[argparse.Namespace], int]) -> None:
        self.summary, self.description, self.examples, self.options, self.run = \
            summary, description, examples, options, run


def _assembly_option(parser: argparse.ArgumentParser) -> None:
    """``--assembly DIR``, as every command that reads a synthesized app takes it."""
    parser.add_argument("--assembly", default="cdk.out", metavar="DIR",
                        help="the cloud assembly folder (default: cdk.out)")


def _build_options(parser: argparse.ArgumentParser) -> None:
    from layerkit.core.targets import ARCHITECTURES, RUNTIMES  # lazy: a command imports only its own steps

    parser.add_argument("folder", metavar="FOLDER",
                        help="a layer folder (python/ and a declaration) or a function folder (its modules)")
    kind = parser.add_mutually_exclusive_group()
    kind.add_argument("--layer", dest="kind", action="store_const", const="layer",
                      help="build FOLDER as a layer (default: a layer, unless it holds modules and no python/)")
    kind.add_argument("--function", dest="kind", action="store_const", const="function",
                      help="build FOLDER as a function: its code and dependencies at the zip's root")
    parser.add_argument("--runtime", required=True, action="append", choices=list(RUNTIMES),
                        help="Lambda runtime; repeat it for a layer of several (one zip per version it needs)")
    parser.add_argument("--arch", required=True, action="append", choices=list(ARCHITECTURES),
                        help="Lambda architecture; repeatable, as --runtime")
    parser.add_argument("--out", metavar="PATH",
                        help="copy the zip to this file (a folder, with several targets)")
    parser.add_argument("--json", action="store_true",
                        help="print one JSON object: zip, sha256, sizes, cache, builder, asset_hash, packages...")
    parser.add_argument("--no-bytecode", dest="bytecode", action="store_false",
                        help="ship no .pyc (default: compile them with a Python of the runtime's version)")
    parser.add_argument("--builder", choices=["local", "docker"], default="local",
                        help="local (default): without Docker; docker: in the runtime's Lambda build image, as the "
                             "CDK's PythonLayerVersion does (packages that publish only sources compile there)")
    parser.add_argument("--docker-network", metavar="NETWORK",
                        help="with --builder docker: the bundling container's network (default: host where the "
                             "engine has no bridge network, else Docker's)")
    parser.add_argument("--cache-dir", type=Path, default=None, metavar="DIR",
                        help="the kit's cache (default: $LAYERKIT_CACHE_DIR, else ~/.cache/layerkit)")
    parser.add_argument("--workers", type=_positive_int, default=None, metavar="N",
                        help="processes and threads to compile and compress with (default: one per core); the zip "
                             "is the same whatever N")
    parser.add_argument("--exclude", action="append", default=[], metavar="PATTERN",
                        help="a glob pattern of files that never deploy (repeatable), beside the never-deploy list")
    parser.add_argument("--slim", action="append", default=[], choices=["tests", "debug-symbols"],
                        help="leave the packages' tests/ folders, or their .so files' debug symbols, out (repeatable)")
    parser.add_argument("--without", action="append", default=[], metavar="DISTRIBUTION",
                        help="leave a distribution out, e.g. boto3 (the runtime's own copy then applies; repeatable)")


def _describe_options(parser: argparse.ArgumentParser) -> None:
    _assembly_option(parser)
    parser.add_argument("--json", action="store_true",
                        help="print one JSON object with the stacks, layers and functions")


def _check_options(parser: argparse.ArgumentParser) -> None:
    _assembly_option(parser)
    parser.add_argument("--json", action="store_true",
                        help="print a JSON list of findings: path, severity, rule, message")


def _invoke_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("function", nargs="?", metavar="STACK/FUNCTION_ID",
                        help="e.g. my-stack/Function (see --list)")
    _assembly_option(parser)
    parser.add_argument("--list", action="store_true", help="list the functions that can be invoked")
    parser.add_argument("--event", action="append", metavar="FILE|-",
                        help="an event JSON file, or - for stdin; repeat for several events (default: {})")
    parser.add_argument("--env", action="append", type=_key_value, metavar="KEY=VALUE",
                        help="set or override an environment variable (repeatable)")
    parser.add_argument("--timeout", type=_positive_seconds, metavar="SECONDS",
                        help="default: the function's timeout")
    parser.add_argument("--repeat", type=_positive_int, default=1, metavar="N",
                        help="invoke N times in one warm environment (default: 1)")
    parser.add_argument("--backend", choices=["auto", "sandbox", "docker"], default="auto",
                        help="auto (default): docker where a daemon answers and has the Lambda image, else sandbox")
    parser.add_argument("--network", choices=["sandbox", "host", "none"], default="sandbox",
                        help="the sandbox's network: sandbox (default: its own, the internet but never this "
                             "machine), host (this machine's: to reach a local emulator on 127.0.0.1), none")
    parser.add_argument("--layers-from", action="append", metavar="OTHER_CDK_OUT",
                        help="the assembly of the app that publishes a layer this function uses (repeatable)")
    parser.add_argument("--layer", action="append", type=_layer_path, metavar="NAME=PATH",
                        help="the zip or folder of a layer owned elsewhere, by its SSM parameter or ARN (repeatable)")
    parser.add_argument("--synth", action="store_true",
                        help="synthesize the app of this folder (cdk.json) into --assembly first")
    parser.add_argument("--cache-dir", type=Path, default=None, help=argparse.SUPPRESS)


def _check_upgrade_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("assemblies", nargs="+", metavar="ASSEMBLY",
                        help="BEFORE AFTER, or one with --against-deployed")
    parser.add_argument("--against-deployed", action="store_true",
                        help="read BEFORE from CloudFormation (needs boto3 and AWS credentials)")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")


def _sam_template_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("stack", metavar="STACK", help="the stack of the functions, e.g. my-app-orders")
    _assembly_option(parser)
    parser.add_argument("-o", "--output", metavar="FILE", help="write it here (default: standard output); asset "
                                                                "paths are relative to where it is written")


#: Each command: its summary, its description, its examples, its options, and what runs it.
_COMMANDS: dict[str, _Command] = {
    "build": _Command("build a layer or function folder into a zip", """
        Build a layer folder (python/ and a dependency declaration) or a function folder (its code and its
        dependencies) into a deterministic zip for one runtime and architecture, with the wheels for Lambda's
        platform, without Docker (or with it: --builder docker). An unchanged folder is a cache hit.""", """
        layerkit build layers/my_layer --runtime python3.12 --arch x86_64 --out my_layer.zip
        layerkit build lambdas/order_total --runtime python3.12 --arch arm64 --json
        layerkit build layers/my_layer --runtime python3.12 --runtime python3.13 --arch x86_64 --arch arm64 --out dist/
        layerkit build layers/another_layer --runtime python3.13 --arch x86_64 --builder docker""",
        _build_options, cmd_build),
    "describe": _Command("list the stacks, layers and functions of a synthesized app", """
        List the stacks of a cloud assembly (and the order they deploy in), its layers with their sizes and
        asset keys, and its functions with the layers they use and how each reaches them.""", """
        layerkit describe
        layerkit describe --assembly cdk.out --json""",
        _describe_options, cmd_describe),
    "check": _Command("run the guardrails on a synthesized app", """
        Apply the rules layerkit.check(app) applies at synth to a cloud assembly already synthesized: layer
        layout, compiled files built for another Python or machine, layers built for another runtime or
        architecture than their functions, more than 5 layers, Lambda's 250 MB, shadowed modules and version
        clashes. Exit 1 when one is an error.""", """
        layerkit check
        layerkit check --assembly cdk.out --json""",
        _check_options, cmd_check),
    "invoke": _Command("run a synthesized function locally with its layers, as Lambda would", """
        Run a function of the cloud assembly with its code at /var/task and its layers merged at /opt: in its
        Lambda base image where Docker answers, else in a bubblewrap sandbox. The response goes to stdout (one
        JSON document per invoke); Lambda's log lines and REPORT lines go to stderr.""", """
        layerkit invoke --list
        layerkit invoke my-stack/Function --event events/order.json
        echo '{"text": "a b a"}' | layerkit invoke my-stack/Function --event - --repeat 3
        layerkit invoke my-stack/Function --env LOG_LEVEL=DEBUG --backend sandbox --network host""",
        _invoke_options, cmd_invoke),
    "check-upgrade": _Command("before a deploy: layers that get a new version, exports that lock", """
        Compare the assembly deployed (BEFORE) with the one about to be (AFTER): the layers that get a new
        version, the functions that move to it or get new code. Exit 1 when an export that another stack
        imports would change or disappear, which CloudFormation would refuse.""", """
        layerkit check-upgrade cdk.out.deployed cdk.out
        layerkit check-upgrade --against-deployed cdk.out""",
        _check_upgrade_options, cmd_check_upgrade),
    "sam-template": _Command("a template of one stack that 'sam local invoke' runs with its layers", """
        Write the template of STACK with the layer versions its functions use from other stacks copied in (with
        their assets), so that 'sam local invoke' mounts them, whichever sharing mode. For local runs only:
        never deploy it.""", """
        layerkit sam-template my-app-orders -o sam/template.json
        sam local invoke -t sam/template.json Function76856677""",
        _sam_template_options, cmd_sam_template),
}


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The command line. ``only`` names the one command whose options are added (the others keep their name and
    summary, all the top-level help shows): a command line is parsed without building six."""
    parser = argparse.ArgumentParser(
        prog="layerkit", formatter_class=_Formatter,
        description="Build AWS Lambda layers and functions for the CDK, check them, and run them locally as "
                    "Lambda would.",
        epilog=textwrap.dedent("""\
            examples:
              layerkit build layers/my_layer --runtime python3.12 --arch arm64 --out my_layer.zip
              layerkit describe --assembly cdk.out
              layerkit check --assembly cdk.out
              layerkit invoke my-stack/Function --event events/order.json
              layerkit check-upgrade cdk.out.deployed cdk.out

            'layerkit COMMAND --help' shows a command's options and examples."""))
    parser.add_argument("--version", action="version", version=f"layerkit {__version__}")
    parser.add_argument("--debug", action="store_true", help="show the traceback of an error")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, command in _COMMANDS.items():
        if only is not None and name != only:
            sub.add_parser(name, help=command.summary)
            continue
        options = sub.add_parser(
            name, help=command.summary, formatter_class=_Formatter,
            description=textwrap.dedent(command.description).strip(),
            epilog="examples:\n" + textwrap.indent(textwrap.dedent(command.examples).strip(), "  "))
        command.options(options)
        # --debug after the command too (layerkit build ... --debug), without undoing one given before it.
        options.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
        options.set_defaults(func=command.run, parser=options)
    return parser


def _command_in(argv: Sequence[str]) -> str | None:
    """The command a command line names: its first word that is not an option (the top-level options take no
    value), if it is one of the kit's."""
    first = next((word for word in argv if not word.startswith("-")), None)
    return first if first in _COMMANDS else None


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command line. Each command imports only its own steps of the kit, and only its own options are
    built, so that a cache hit of ``layerkit build`` starts in a few times a bare interpreter's start."""
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser(_command_in(argv)).parse_args(argv)
    if args.debug:  # the kit's tracebacks, in this process and in the synths it runs (core/errors.py)
        os.environ["LAYERKIT_DEBUG"] = "1"
    try:
        with speaking(ON_COMMAND_LINE):  # each fix a message suggests is one of these commands' options
            return args.func(args)
    except UsageError as error:
        if args.debug:
            raise
        args.parser.print_usage(sys.stderr)
        print(f"layerkit {args.command}: error: {error}", file=sys.stderr)
        return EXIT_USAGE
    except SynthError as error:
        if args.debug:
            raise
        for mistake in error.mistakes if not error.shown else ():
            print(f"layerkit: {mistake}", file=sys.stderr)
        print(f"layerkit: error: {error}", file=sys.stderr)
        return EXIT_ERROR
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
    except Exception as error:  # a case the kit does not know yet: still one line, the traceback on request
        if args.debug:
            raise
        print(f"layerkit: error: {type(error).__name__}: {str(error)[:300]} (a case layerkit does not handle yet: "
              "run with --debug for the traceback, and report it)", file=sys.stderr)
        return EXIT_ERROR


if __name__ == "__main__":
    sys.exit(main())
