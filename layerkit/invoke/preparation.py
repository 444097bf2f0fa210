"""What happens between naming a function and running it, the same for ``layerkit invoke`` and the pytest plugin:
the function found in the assembly, its layers owned elsewhere given their content (:mod:`.remote`), and the two
things a user must hear before trusting the answer: a folder changed since the synth (the run is of the
synthesized code), and environment variables CloudFormation fills in at deploy (they have no value here).

Only the wording of a fix differs between the two callers: a flag on the command line, a keyword in a test.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from layerkit.assembly import Assembly, Function
from layerkit.core.spelling import in_use
from layerkit.invoke import remote
from layerkit.invoke.freshness import stale_folders


def prepare(assembly: Assembly, function_id: str, *, env_overrides: Mapping[str, str] | None = None,
            layer_paths: Mapping[str, Path] | None = None, layers_from: Sequence[str | Path] = (),
            cache_dir: Path | None = None, warn: Callable[[str], None]) -> Function:
    """The function ``function_id`` of ``assembly`` ready to run, each warning it deserves given to ``warn``, its
    fix spelled where the user is (:mod:`layerkit.core.spelling`)."""
    spelling = in_use()
    function = remote.resolve(assembly.function(function_id), layer_paths=layer_paths, layers_from=layers_from,
                              cache_dir=cache_dir)
    if stale := stale_folders(function, assembly.directory):
        warn(f"{', '.join(stale)} changed since {assembly.directory} was synthesized: this invoke runs the "
             f"synthesized code; {spelling.synth}")
    overrides = env_overrides or {}
    if missing := [name for name in function.unresolved_environment if name not in overrides]:
        warn(f"no local value for {', '.join(missing)}: CloudFormation sets it at deploy time (a reference to a "
             f"resource); {spelling.env.format(name=missing[0])}")
    return function
