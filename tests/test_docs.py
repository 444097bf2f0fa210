"""The documentation cannot rot: every relative link and anchor resolves, every command shown is one the CLI,
the Makefile or the CDK CLI takes, the troubleshooting page lists exactly the errors and annotations the code
raises, and the benchmark figures are the ones bench/results.json holds."""

from __future__ import annotations

import ast
import importlib
import json
import pkgutil
import re
import shlex
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT

DOCS = ROOT / "docs"
PAGES = [ROOT / "README.md", *sorted(DOCS.glob("*.md"))]
LINK = re.compile(r"(?<!!)\[[^\]]+\]\(([^)\s]+)\)")


def prose_and_code(page: Path) -> tuple[list[str], list[str]]:
    """The page's lines outside code, and its code lines (fenced blocks, and blocks indented by four spaces)."""
    prose, code = [], []
    fenced = False
    previous_blank = True
    for line in page.read_text(encoding="utf-8").splitlines():
        if line.lstrip().startswith("```"):
            fenced = not fenced
            continue
        if fenced:
            code.append(line)
        elif line.startswith("    ") and (previous_blank or (code and code[-1] is not None)) and line.strip():
            code.append(line[4:])
        else:
            prose.append(line)
            code.append(None)  # type: ignore[arg-type]  # a break between blocks
        previous_blank = not line.strip()
    return prose, [line for line in code if line is not None]


def slug(heading: str) -> str:
    """GitHub's anchor of a heading."""
    text = heading.strip().lstrip("#").strip().lower().replace("`", "")
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(page: Path) -> set[str]:
    prose, _ = prose_and_code(page)
    return {slug(line) for line in prose if line.startswith("#")}


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_every_relative_link_and_anchor_resolves(page):
    prose, _ = prose_and_code(page)
    broken = []
    for line in prose:
        for target in LINK.findall(line):
            if re.match(r"[a-z]+:", target):
                continue  # https:, mailto:
            path, _, anchor = target.partition("#")
            linked = (page.parent / path).resolve() if path else page
            if not linked.exists():
                broken.append(f"{target}: no such file")
            elif anchor and linked.suffix == ".md" and anchor not in anchors(linked):
                broken.append(f"{target}: no heading #{anchor} in {linked.name}")
    assert not broken, broken


def test_the_readme_is_a_landing_page_that_links_every_page():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert len(readme.encode()) < 10_000
    linked = {target.partition("#")[0] for target in LINK.findall(readme)}
    assert {f"docs/{page.name}" for page in DOCS.glob("*.md")} <= linked


# -- commands -------------------------------------------------------------------------------------------------
CDK_COMMANDS = {"synth", "deploy", "bootstrap", "diff", "destroy", "list", "ls", "init", "flags"}


def commands_in(page: Path) -> list[str]:
    _, code = prose_and_code(page)
    found = []
    for line in code:
        line = line.strip()
        line = re.sub(r"^(- run: |- |\$ )", "", line)
        for segment in line.split(" | "):
            segment = re.split(r"\s+#\s", segment)[0].strip()
            if re.match(r"(\.venv/bin/)?layerkit |make |npx cdk |cdk ", segment):
                found.append(segment)
    return found


def makefile_targets() -> set[str]:
    text = (ROOT / "Makefile").read_text()
    return {m.group(1) for m in re.finditer(r"^([a-z][a-z-]*):", text, re.MULTILINE)}


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_every_command_shown_is_one_the_tools_take(page):
    from layerkit.cli import build_parser

    targets = makefile_targets()
    wrong = []
    for command in commands_in(page):
        words = shlex.split(command)
        if words[0].endswith("layerkit"):
            try:
                build_parser().parse_args(words[1:])
            except SystemExit as done:
                if done.code != 0:  # --version and --help exit 0
                    wrong.append(command)
        elif words[0] == "make":
            wrong += [command for target in words[1:] if target not in targets]
        else:
            subcommand = words[2] if words[0] == "npx" else words[1]
            if subcommand not in CDK_COMMANDS:
                wrong.append(command)
    assert not wrong, wrong


def test_the_pages_show_commands_at_all():
    assert len(commands_in(DOCS / "cli.md")) >= 10  # the extraction itself works


def test_the_command_line_page_covers_every_command_and_option():
    from layerkit.cli import build_parser

    page = (DOCS / "cli.md").read_text(encoding="utf-8")
    parser = build_parser()
    (sub,) = [a for a in parser._actions if a.dest == "command"]
    missing = []
    for name, command in sub.choices.items():
        if f"## `layerkit {name}`" not in page:
            missing.append(name)
        for action in command._actions:
            if action.help == "==SUPPRESS==" or action.dest in ("help", "parser"):
                continue
            longest = max(action.option_strings, key=len) if action.option_strings else None
            if longest and f"`{longest}" not in page:
                missing.append(f"{name} {longest}")
    assert not missing, missing


# -- troubleshooting --------------------------------------------------------------------------------------------
def error_classes() -> set[str]:
    import layerkit
    from layerkit.core.errors import LayerkitError

    for module in pkgutil.walk_packages(layerkit.__path__, "layerkit."):
        importlib.import_module(module.name)

    def walk(cls: type) -> set[type]:
        return {sub for child in cls.__subclasses__() for sub in {child, *walk(child)}}

    return {cls.__name__ for cls in walk(LayerkitError) if cls.__module__.startswith("layerkit")}


def annotation_ids() -> set[str]:
    """Every id an annotation of the kit can carry: the rules registry, which every Finding and every direct
    annotation goes through (checked below)."""
    from layerkit.rules.findings import RULES, annotation_id

    return {annotation_id(rule) for rule in RULES}


def test_every_annotation_the_kit_adds_carries_a_registered_id():
    """No annotation id is written by hand: each add_warning_v2 / add_info_v2 call takes annotation_id(...) (or
    a constant made by it), so the registry is the whole list."""
    for source in (ROOT / "layerkit").rglob("*.py"):
        tree = ast.parse(source.read_text(encoding="utf-8"))
        made = {t.id for node in ast.walk(tree) if isinstance(node, ast.Assign) and isinstance(node.value, ast.Call)
                and getattr(node.value.func, "id", "") == "annotation_id" for t in node.targets
                if isinstance(t, ast.Name)}
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and getattr(node.func, "attr", "") in ("add_warning_v2", "add_info_v2"):
                first = node.args[0]
                assert (isinstance(first, ast.Call) and getattr(first.func, "id", "") == "annotation_id") or \
                    (isinstance(first, ast.Name) and first.id in made), f"{source}:{node.lineno}: an id by hand"


def documented(level: str) -> set[str]:
    prose, _ = prose_and_code(DOCS / "troubleshooting.md")
    return {line.removeprefix(level).strip() for line in prose if line.startswith(level)}


def test_troubleshooting_lists_every_error_class_and_only_those():
    headings = documented("### ")
    classes = error_classes()
    assert len(classes) > 10
    assert classes - headings == set(), "errors without a troubleshooting entry"
    assert {h for h in headings if not h.startswith("layerkit:")} - classes == set(), "entries for no error"


def test_troubleshooting_lists_every_annotation_id_and_only_those():
    headings = {h for h in documented("### ") if h.startswith("layerkit:")}
    ids = annotation_ids()
    assert "layerkit:too-large" in ids
    assert "layerkit:built-without-docker" in ids
    assert ids - headings == set(), "annotations without a troubleshooting entry"
    assert headings - ids == set(), "entries for no annotation"


# -- benchmarks --------------------------------------------------------------------------------------------------
def test_the_benchmark_figures_in_the_docs_are_the_ones_measured():
    sys.path.insert(0, str(ROOT / "bench"))
    try:
        import report
    finally:
        sys.path.remove(str(ROOT / "bench"))
    results = json.loads((ROOT / "bench" / "results.json").read_text())
    page = (DOCS / "benchmarks.md").read_text(encoding="utf-8")
    assert report.block(results) in page
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert report.headline(results) in readme


# -- snippets ----------------------------------------------------------------------------------------------------
def python_snippets() -> list[tuple[str, str]]:
    """Every ``python`` fenced block of the README and the docs, with where it is."""
    found = []
    for page in PAGES:
        block: list[str] | None = None
        for number, line in enumerate(page.read_text(encoding="utf-8").splitlines(), 1):
            if block is None and line.strip() == "```python":
                block, start = [], number
            elif block is not None and line.strip() == "```":
                found.append((f"{page.relative_to(ROOT).as_posix()}:{start}", "\n".join(block) + "\n"))
                block = None
            elif block is not None:
                block.append(line)
    return found


def test_the_pages_show_python_at_all():
    assert len(python_snippets()) >= 8


#: What a fragment of a stack (``self``...) may name: an app with two stacks and a layer, as the pages set them up.
SCAFFOLD = '''
import layerkit
from aws_cdk import App, CfnWaitConditionHandle, Stack
from aws_cdk import aws_lambda as lambda_
from layerkit import PythonFunction, SharedPythonLayer, Slim
from tests.conftest import app_context

app = App(outdir=OUTDIR, context=app_context())
layers_stack, orders_stack, self = Stack(app, "layers"), Stack(app, "orders"), Stack(app, "docs")
for stack in (layers_stack, orders_stack, self):  # a stack the fragment leaves empty would not validate
    CfnWaitConditionHandle(stack, "Placeholder")
layer = SharedPythonLayer(layers_stack, "Scaffold", entry="layers/my_layer", runtime=lambda_.Runtime.PYTHON_3_12,
                          parameter_name="/docs/scaffold/arn")
'''


@pytest.mark.parametrize(("where", "snippet"), python_snippets(), ids=[w for w, _ in python_snippets()])
def test_every_python_snippet_runs_as_written_on_the_example_repository(where, snippet, example, kit_cache,
                                                                          tmp_path, monkeypatch):
    """A whole app runs as a script and synthesizes without an error; a fragment of a stack synthesizes inside a
    scaffold app; a test of the pytest plugin passes against the example's assembly."""
    import subprocess

    from layerkit.assembly import Assembly

    env = {**__import__("os").environ, "LAYERKIT_CACHE_DIR": str(kit_cache), "CDK_OUTDIR": str(tmp_path / "out")}
    if "def test_" in snippet:
        (tmp_path / "test_snippet.py").write_text(snippet)
        result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tmp_path),
                                 "--rootdir", str(tmp_path), "--layerkit-assembly", example.app.outdir],
                                capture_output=True, text=True, timeout=600, cwd=tmp_path, env=env)
        assert result.returncode == 0, result.stdout[-3000:]
        return
    if "app.synth()" in snippet:
        (tmp_path / "app.py").write_text(snippet)
        result = subprocess.run([sys.executable, str(tmp_path / "app.py")], capture_output=True, text=True,
                                timeout=600, cwd=ROOT, env=env)
        assert result.returncode == 0, result.stderr[-3000:]
    else:
        monkeypatch.chdir(ROOT)
        monkeypatch.setenv("LAYERKIT_CACHE_DIR", str(kit_cache))
        namespace = {"OUTDIR": str(tmp_path / "out")}
        exec(compile(SCAFFOLD + snippet + "\nlayerkit.check(app)\napp.synth()\n", where, "exec"), namespace)
    assert Assembly.load(tmp_path / "out").errors() == []


def test_every_folder_a_command_names_exists_in_the_example_repository():
    missing = []
    for page in PAGES:
        for command in commands_in(page):
            for word in shlex.split(command):
                if word.startswith(("layers/", "lambdas/")) and not (ROOT / word.split("=")[-1]).exists():
                    missing.append(f"{page.name}: {word}")
    assert missing == []
