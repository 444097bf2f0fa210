"""Layers owned elsewhere, found for a local invoke: from the owner app's assembly, from a file, or downloaded.

A function of this app may use a layer another app publishes (:mod:`layerkit.external`): this assembly knows only
the SSM parameter or the version ARN that names it. ``layerkit invoke`` finds its content, in this order:

1. ``--layer NAME=PATH``: a zip or a folder, for the layer named by that SSM parameter or ARN;
2. ``--layers-from OTHER_CDK_OUT``: the owner app's synthesized assembly, which writes that SSM parameter;
3. with AWS credentials: the version downloaded by its ARN (``GetLayerVersionByArn``; an SSM parameter is read
   first, ``GetParameter``), kept in the kit's cache by version ARN, as AWS SAM CLI keeps them, and checked
   against the SHA-256 Lambda gives for it. ``AWS_ENDPOINT_URL_LAMBDA`` and ``AWS_ENDPOINT_URL_SSM`` point
   the calls elsewhere (a local emulator).
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from layerkit import cache
from layerkit.assembly import Assembly, Function, LayerUse
from layerkit.errors import InvokeError

_DOWNLOAD_TIMEOUT_S = 120


def parse_layer_paths(pairs: Sequence[str] | None) -> dict[str, Path]:
    """``--layer NAME_OR_ARN=PATH`` pairs."""
    found = {}
    for pair in pairs or ():
        name, sep, path = pair.rpartition("=")
        if not sep or not name or not path:
            raise InvokeError(f"--layer {pair!r} is not NAME=PATH; write e.g. --layer /platform/layers/common/arn="
                              "layer.zip")
        if not Path(path).exists():
            raise InvokeError(f"--layer {name}={path}: {path} does not exist; give a layer zip or folder")
        found[name] = Path(path)
    return found


def resolve(function: Function, *, layer_paths: Mapping[str, Path] | None = None,
            layers_from: Sequence[str | Path] = (), cache_dir: Path | None = None) -> Function:
    """``function`` with each layer owned elsewhere given its content (see the module), or an error naming the
    ways to give it."""
    if not any(use.layer.owned_elsewhere for use in function.layers):
        return function
    others = [Assembly.load(path) for path in layers_from]
    uses = []
    for use in function.layers:
        name = use.layer.owned_elsewhere
        if not name:
            uses.append(use)
            continue
        found = (layer_paths or {}).get(name)
        if found is None:
            for other in others:
                if (layer := other.layer_published_as(name)) is not None and layer.asset is not None:
                    found = layer.asset
                    break
        if found is None:
            found = _download(name, function, cache_dir)
        uses.append(LayerUse(dataclasses.replace(use.layer, asset=found), use.via, use.detail))
    return dataclasses.replace(function, layers=tuple(uses))


def _download(name: str, function: Function, cache_dir: Path | None) -> Path:
    """The version named ``name`` downloaded with this machine's AWS credentials, cached by its ARN."""
    ways = (f"pass --layers-from the owner app's cdk.out, or --layer {name}=PATH (a zip or folder of it), or "
            "configure AWS credentials that may read it")
    try:
        import boto3
        from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError
    except ImportError:
        raise InvokeError(f"function {function.id} uses layer {name}, owned elsewhere, and boto3 is not installed to "
                          f"download it: {ways}") from None
    try:
        session = boto3.Session()
        if session.get_credentials() is None:
            raise InvokeError(f"function {function.id} uses layer {name}, owned elsewhere: {ways}")
        region = session.region_name or "us-east-1"
        arn = name
        if not name.startswith("arn:"):
            arn = session.client("ssm", region_name=region).get_parameter(Name=name)["Parameter"]["Value"]
        return _fetch(arn, session.client("lambda", region_name=arn.split(":")[3] or region), cache_dir)
    except (BotoCoreError, ClientError, NoCredentialsError) as error:
        raise InvokeError(f"function {function.id}: layer {name} could not be downloaded ({error}): {ways}") \
            from None


def _fetch(arn: str, client: Any, cache_dir: Path | None) -> Path:
    entry = cache.resolve_cache_dir(cache_dir) / "remote-layers" / hashlib.sha256(arn.encode()).hexdigest()

    def fill(tree: Path) -> dict[str, Any]:
        version = client.get_layer_version_by_arn(Arn=arn)
        content = version["Content"]
        with urllib.request.urlopen(content["Location"], timeout=_DOWNLOAD_TIMEOUT_S) as response:
            data = response.read()
        digest = base64.b64encode(hashlib.sha256(data).digest()).decode()
        if content.get("CodeSha256") and digest != content["CodeSha256"]:
            raise InvokeError(f"layer {arn}: the download does not match the SHA-256 Lambda gives for it; try again")
        (tree / "layer.zip").write_bytes(data)
        return {"arn": arn, "sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}

    meta, _ = cache.materialize(entry, fill, required=("arn", "sha256", "bytes"))
    if not cache.intact(entry / "layer.zip", meta["bytes"], meta["sha256"]):
        cache.discard(entry)
        cache.materialize(entry, fill, required=("arn", "sha256", "bytes"))
    return entry / "layer.zip"

