"""``auto``: one builder for the whole app, and only one that can make every target in it.

Docker is chosen only while, for each runtime and architecture the app's ``auto`` constructs are built for, the
engine can build it (:func:`layerkit.docker.engine.cannot_build`: the build image for that platform, a daemon that
runs it, a container that reaches the index). A construct is built as it is created, so the app's later targets
are not known when the first one is decided: when a later one cannot be made in Docker, the app turns to the
local build, and the constructs that Docker bundled before it are built again locally, in place (the same
asset hash and S3 key, the local build's bytes). Either way the app ends with one builder, and says why once.

Explicit choices (``builder=`` or ``-c layerkit:builder=docker|local``) are never changed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from aws_cdk import Annotations
from constructs import Construct

from layerkit.core.targets import Target
from layerkit.docker import engine
from layerkit.rules.findings import annotation_id

#: The context key that names the builder (``auto``, ``docker``, ``local``).
BUILDER_CONTEXT_KEY = "layerkit:builder"
#: The annotation an app's one warning about the local build carries.
WARNING_ID = annotation_id("built-without-docker")


@dataclass
class _AppPlan:
    """What ``auto`` decided for one app: ``docker`` so far, or ``local`` for good."""

    docker: bool | None = None
    bundled: list[Callable[[], None]] = field(default_factory=list)  # turns a Docker-bundled asset local
    missing: engine.Refusal | None = None  # the first target whose build image the engine lacks
    told: set[tuple[str, str]] = field(default_factory=set)  # (image, platform) already said missing


def _plan(scope: Construct) -> _AppPlan:
    root = scope.node.root
    plan = getattr(root, "_layerkit_builder_plan", None)
    if plan is None:
        plan = _AppPlan()
        root._layerkit_builder_plan = plan  # type: ignore[attr-defined]
    return plan


def docker_for(scope: Construct, target: Target | None, network: Callable[[], str | None], *,
               what: str = "") -> bool:
    """Whether an ``auto`` construct of ``scope`` for ``target`` builds in Docker (None: a construct of several
    targets, ``what``, which only the local build makes) on the ``network`` its container would use. Turns the
    app local, with its one warning, the first time a target cannot be made in Docker."""
    plan = _plan(scope)
    if plan.docker is False:
        return False
    if not engine.docker_available():
        plan.docker = False  # no engine: the local build, as the user expects without Docker; nothing to say
        return False
    refusal: engine.Refusal | None
    if target is None:
        refusal = engine.Refusal(f"{what} serves several runtimes or architectures, which only the local build "
                                 "merges into one layer", "build one layer per target to build it in Docker")
    elif not engine.image_present(target.bundling_image, target.docker_platform):
        # auto never pulls. No build image in the engine is Docker not set up for this app: the local build,
        # quietly, unless another target shows that it is (then this is said, once).
        refusal = engine.Refusal(f"Docker cannot build for {target.runtime} on {target.architecture} here: "
                                 f"{target.bundling_image} for {target.docker_platform} is not in the Docker engine",
                                 f"pull it (docker pull --platform {target.docker_platform} {target.bundling_image})")
        if plan.docker is None:
            plan.missing = plan.missing or refusal
            return False
    elif plan.missing is not None:
        refusal = plan.missing  # this target's image is there, an earlier one's is not
    else:
        refusal = engine.cannot_build(target.bundling_image, target.docker_platform, target.machine, network(),
                                      engine.index_url())
        if refusal is not None:
            refusal = engine.Refusal(f"Docker cannot build for {target.runtime} on {target.architecture} here: "
                                     f"{refusal.reason}", refusal.fix)
    if refusal is None:
        plan.docker = True
        return True
    rebuilt = len(plan.bundled)
    plan.docker = False
    for make_local in plan.bundled:
        make_local()
    plan.bundled.clear()
    again = (f" ({rebuilt} construct{'s' if rebuilt != 1 else ''} bundled in Docker before this one "
             f"{'were' if rebuilt != 1 else 'was'} built again without it)") if rebuilt else ""
    Annotations.of(scope).add_warning_v2(
        WARNING_ID, f"every construct of this app is built without Docker{again}: {refusal.reason}; "
        f"{refusal.fix}, or set -c {BUILDER_CONTEXT_KEY}=local to build without Docker and without this check")
    return False


def first_to_need(scope: Construct, image: tuple[str, str]) -> bool:
    """Whether ``scope`` is the app's first construct to need ``image`` (image, platform) that is missing: the one
    that says so."""
    told = _plan(scope).told
    if image in told:
        return False
    told.add(image)
    return True


def bundled_in_docker(scope: Construct, make_local: Callable[[], None]) -> None:
    """Record an ``auto`` construct that Docker bundled: ``make_local`` builds it locally if the app turns local."""
    _plan(scope).bundled.append(make_local)
