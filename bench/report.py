"""The Markdown tables of bench/results.json, and the block of docs/benchmarks.md they fill.

The docs quote the figures only through this module: ``make bench`` rewrites the block, and a test checks that
it is what bench/results.json gives, so a figure in the docs is always one a run measured.
"""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs" / "benchmarks.md"
README = ROOT / "README.md"
BEGIN = "<!-- begin: written by make bench from bench/results.json -->"
END = "<!-- end: written by make bench -->"


def fmt(value: object, unit: str) -> str:
    if not isinstance(value, int | float):
        return "-" if value is None else str(value)
    if unit == "s":
        return f"{value * 1000:.1f} ms" if value < 1 else f"{value:.2f} s"
    if unit == "B":
        return f"{value / 1e6:.2f} MB"
    return f"{value:g} {unit}"  # a count: layer versions


MET = {True: "yes", False: "**no**", None: "-", "noise": "within noise"}


def spread(low: float, high: float, unit: str) -> str:
    """A min-max range, in the unit of the value beside it."""
    return f"{fmt(low, unit)}-{fmt(high, unit)}" if unit else f"{low:.2f}-{high:.2f}"


def tables(results: dict[str, object]) -> str:
    lines = ["| figure | kit: median (min-max) | baseline | ratio: median (min-max) | target | met |",
             "|---|---|---|---|---|---|"]
    for key, data in results["figures"].items():
        if "identical" in data:
            lines.append(f"| {key} | sha256 {data['sha256'][0][:12]} | sha256 {data['sha256'][-1][:12]} | - | "
                         f"{data['target']} | {MET[data['pass']]} |")
            continue
        baseline = fmt(data["baseline"], data.get("unit", "s"))
        if data.get("peer_error"):
            baseline = f"failed: {data['peer_error']}"
        ratio = f"{data['ratio']:.3f}" if data.get("ratio") is not None else "-"
        if data.get("ratio_spread") and data.get("ratio") is not None:
            ratio += f" ({spread(*data['ratio_spread'], '')})"
        kit_value = fmt(data["kit"], data.get("unit", "s")) if data.get("kit") is not None else data.get("note", "-")
        if data.get("spread") and data.get("kit") is not None:
            kit_value += f" ({spread(*data['spread'], data.get('unit', 's'))})"
        lines.append(f"| {key} | {kit_value} | {baseline} | {ratio} | {data['target']} | {MET[data['pass']]} |")
    if peers_table := results.get("peers"):
        lines += ["", "| set | tool | cold build (median) | zipped | unzipped |", "|---|---|---|---|---|"]
        for set_name, tools in peers_table.items():
            for tool, row in tools.items():
                seconds = fmt(row["median_s"], "s") if row["median_s"] is not None else f"failed: {row['error']}"
                lines.append(f"| {set_name} | {tool} | {seconds} | {fmt(row['zipped_bytes'], 'B')} | "
                             f"{fmt(row['unzipped_bytes'], 'B')} |")
    if slim := results.get("slim"):
        def lambda_mb(size: object) -> str:  # Lambda's MB (its 250 MB is 262,144,000 bytes), as the kit says them
            return f"{size / 1_048_576:.0f} MB" if isinstance(size, int | float) else "-"

        lines += ["", "| set | options | unzipped (Lambda's MB) | saved | fits in 250 MB |", "|---|---|---|---|---|"]
        for row in slim["rows"]:
            size = row["unzipped_bytes"] or row.get("refused_at")
            fits = "yes" if row["unzipped_bytes"] else "**no**: refused" if size else f"failed: {row['error']}"
            lines.append(f"| {row['set']} | {row['options']} | {lambda_mb(size)} | {lambda_mb(row['saved_bytes'])} | "
                         f"{fits} |")
    if scaling := results.get("scaling"):
        lines += ["", "| set (packages) | arch | build | zipped | unzipped |", "|---|---|---|---|---|"]
        for row in scaling["rows"]:
            lines.append(f"| {row['set']} ({row['packages']}) | {row['architecture']} | {fmt(row['build_s'], 's')} | "
                         f"{fmt(row['zipped_bytes'], 'B')} | {fmt(row['unzipped_bytes'], 'B')} |")
    return "\n".join(lines)




def block(results: dict[str, object]) -> str:
    """What sits between the markers of docs/benchmarks.md."""
    machine = results["machine"]
    loop = machine.get("python_loop_s")  # type: ignore[attr-defined]
    speed = (f"; a pure-Python loop of 10^7 additions took {loop[0]:.2f} s at the start and {loop[1]:.2f} s at the "
             "end, the figure to compare runs by" if loop else "")
    return (f"{BEGIN}\nMeasured {results['date']} on {machine['cores']} cores ({machine['cpu']}{speed}) with "  # type: ignore[index]
            f"`{results['command']}`:\n\n{tables(results)}\n{END}")


def headline(results: dict[str, object]) -> str:
    """The README's few figures, between the same markers."""
    figures = results["figures"]

    def ratio(name: str) -> str:
        value = figures.get(name, {}).get("ratio")  # type: ignore[attr-defined]
        return f"**{value:.2f}x**" if isinstance(value, int | float) else "(not measured)"

    def kit(name: str) -> str:
        value = figures.get(name, {}).get("kit")  # type: ignore[attr-defined]
        return f"**{fmt(value, 's')}**" if isinstance(value, int | float) else "(not measured)"

    lines = [
        f"- a cold build of a heavy layer (numpy, pandas, cryptography, lxml, pillow) takes "
        f"{ratio('cold_vs_sam_builder.heavy')} the time of AWS SAM's builder, with `.pyc` compiled for the runtime "
        f"(SAM's builder ships none); without `.pyc`, like uv's own Lambda recipe, it takes "
        f"{ratio('cold_vs_uv_recipe.heavy')} the recipe's time, and five packages with their dependencies "
        f"{ratio('cold_vs_uv_recipe.deps-5')}, downloads included;",
        f"- an unchanged layer is a cache hit in {kit('cache_hit_cli')} from the command line "
        f"({ratio('cache_hit_cli')} a bare start of the same Python), and costs a synth "
        f"{kit('layer_build_warm_in_synth')};",
        f"- a changed pin in a 34-package layer rebuilds in {ratio('one_pin_changed')} the time of a cold build;",
        f"- a Docker build of a layer, its image built, takes {ratio('docker_layer_build_warm_image')} the time of "
        "the local build.",
    ]
    date = results["date"]
    return f"{BEGIN}\nMeasured {date} with `make bench` (2 cores; each figure side by side with its baseline):\n\n" + \
        "\n".join(lines) + f"\n{END}"


def _replace(path: Path, content: str) -> None:
    text = path.read_text(encoding="utf-8")
    head, _, rest = text.partition(BEGIN)
    _, _, tail = rest.partition(END)
    path.write_text(head + content + tail, encoding="utf-8")


def write_docs(results: dict[str, object], docs: Path = DOCS, readme: Path = README) -> None:
    """Replace the block of ``docs`` with the tables of ``results``, and the README's with its headline."""
    _replace(docs, block(results))
    _replace(readme, headline(results))
