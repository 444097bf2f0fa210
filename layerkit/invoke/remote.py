"""Layers owned elsewhere, found for a local invoke: from the owner app's assembly, from a file, or downloaded.

A function of this app may use a layer another app publishes (:mod:`layerkit.constructs.external`): this assembly
knows only the SSM parameter or the version ARN that names it. ``layerkit invoke`` finds its content, in this order:

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
import http.client
import os
import re
import ssl
import time
import urllib.parse
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from layerkit.assembly import Assembly, Function, LayerUse
from layerkit.core import cache
from layerkit.core.errors import InvokeError, redact
from layerkit.rules.limits import MAX_UNZIPPED_BYTES


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
    others = [Assembly.load(path) for path in layers_from]  # read even when unused: a wrong path is said
    if not any(use.layer.owned_elsewhere for use in function.layers):
        return function
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


#: A layer version ARN: ``arn:<partition>:lambda:<region>:<account>:layer:<name>:<version>``.
LAYER_VERSION_ARN = re.compile(r"^arn:aws[a-z-]*:lambda:[a-z0-9-]+:\d{12}:layer:[A-Za-z0-9_-]{1,140}:\d{1,12}$")
#: The whole download of one layer version (the API call and the content) must end within this.
DOWNLOAD_DEADLINE_S = 300
#: The longest a single read of the download may wait for a byte.
_STALL_S = 30
_PIECE = 1024 * 1024


def _download(name: str, function: Function, cache_dir: Path | None) -> Path:
    """The version named ``name`` downloaded with this machine's AWS credentials, cached by its ARN."""
    ways = (f"pass --layers-from the owner app's cdk.out, or --layer {name}=PATH (a zip or folder of it), or "
            "configure AWS credentials that may read it")
    try:
        # lazy: boto3 is optional: only a layer owned elsewhere, and downloaded, needs it
        import boto3
        from botocore.config import Config
        from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError
    except ImportError:
        raise InvokeError(f"function {function.id} uses layer {name}, owned elsewhere, and boto3 is not installed to "
                          f"download it: {ways}") from None
    deadline = time.monotonic() + DOWNLOAD_DEADLINE_S
    config = Config(connect_timeout=10, read_timeout=30, retries={"max_attempts": 2})
    try:
        session = boto3.Session()
        if session.get_credentials() is None:
            raise InvokeError(f"function {function.id} uses layer {name}, owned elsewhere: {ways}")
        region = session.region_name or "us-east-1"
        arn = name
        if not name.startswith("arn:"):
            value = session.client("ssm", region_name=region, config=config).get_parameter(Name=name)
            arn = value.get("Parameter", {}).get("Value")
            if not isinstance(arn, str) or not LAYER_VERSION_ARN.match(arn):
                raise InvokeError(f"function {function.id}: SSM parameter {name} holds {str(arn)[:120]!r}, not a "
                                  "layer version ARN (arn:aws:lambda:REGION:ACCOUNT:layer:NAME:VERSION); fix the "
                                  f"parameter, or {ways}")
        if not LAYER_VERSION_ARN.match(arn):
            raise InvokeError(f"function {function.id}: {arn[:120]!r} is not a layer version ARN "
                              "(arn:aws:lambda:REGION:ACCOUNT:layer:NAME:VERSION); fix the reference")
        client = session.client("lambda", region_name=arn.split(":")[3], config=config)
        return _fetch(arn, client, cache_dir, deadline)
    except (BotoCoreError, ClientError, NoCredentialsError) as error:
        raise InvokeError(f"function {function.id}: layer {name} could not be downloaded ({error}): {ways}") \
            from None


class _SameHostRedirects(urllib.request.HTTPRedirectHandler):
    """Follows a redirect only to HTTPS on the host first asked (a presigned URL never needs another)."""

    def __init__(self, host: str) -> None:
        self.host = host

    def redirect_request(self, req: Any, fp: Any, code: int, msg: str, headers: Any, newurl: str) -> Any:
        target = urllib.parse.urlsplit(newurl)
        if target.scheme != "https" or target.hostname != self.host:
            raise InvokeError(f"the layer's download redirects to {target.scheme}://{target.hostname}, another host "
                              "than the one Lambda named; it is not followed")
        return super().redirect_request(req, fp, code, msg, headers, newurl)


def _fetch(arn: str, client: Any, cache_dir: Path | None, deadline: float) -> Path:
    """Download layer version ``arn`` into the kit's cache, checked as a wheel is: HTTPS from the host Lambda names,
    no larger than Lambda's limit, within :data:`DOWNLOAD_DEADLINE_S`, its SHA-256 the one Lambda gives."""
    entry = cache.resolve_cache_dir(cache_dir) / "remote-layers" / hashlib.sha256(arn.encode()).hexdigest()

    def fill(tree: Path) -> dict[str, Any]:
        content = client.get_layer_version_by_arn(Arn=arn).get("Content")
        location = content.get("Location") if isinstance(content, dict) else None
        expected = content.get("CodeSha256") if isinstance(content, dict) else None
        if not isinstance(location, str) or not isinstance(expected, str) or not expected:
            missing = "Location" if not isinstance(location, str) else "CodeSha256"
            raise InvokeError(f"layer {arn}: Lambda's answer has no {missing}, so the download cannot be checked; "
                              "it is not used")
        size = content.get("CodeSize")
        if isinstance(size, int) and size > MAX_UNZIPPED_BYTES:
            raise InvokeError(f"layer {arn}: Lambda says it is {size} bytes, over its own limit of "
                              f"{MAX_UNZIPPED_BYTES}; it is not downloaded")
        # No more than Lambda's limit, nor than the size Lambda gives: a body past either is not the layer.
        limit = size if isinstance(size, int) and size >= 0 else MAX_UNZIPPED_BYTES
        url = urllib.parse.urlsplit(location)
        if url.scheme != "https" or not url.hostname:
            raise InvokeError(f"layer {arn}: its download location is not an HTTPS URL ({url.scheme or 'no scheme'}"
                              "), so it is not fetched")
        data_path = tree / "layer.zip"
        digest = hashlib.sha256()
        written = 0
        opener = urllib.request.build_opener(urllib.request.HTTPSHandler(context=_tls_context()),
                                             _SameHostRedirects(url.hostname))
        try:
            # Each read waits at most _STALL_S; the deadline is checked between reads, so a server that sends a
            # byte at a time cannot hold the download past it.
            with opener.open(location, timeout=min(_STALL_S, _left(deadline, arn))) as response, \
                    open(data_path, "wb") as out:
                while True:
                    piece = response.read1(_PIECE)
                    if not piece:
                        break
                    written += len(piece)
                    if written > limit:
                        said = f"the {limit} bytes Lambda gives as its size" if limit != MAX_UNZIPPED_BYTES else \
                            f"{MAX_UNZIPPED_BYTES} bytes, Lambda's own limit for a layer"
                        raise InvokeError(f"layer {arn}: the download is over {said}; it is stopped and not used")
                    digest.update(piece)
                    out.write(piece)
                    _left(deadline, arn)
        except (OSError, http.client.HTTPException) as error:
            if isinstance(error, TimeoutError) or time.monotonic() > deadline:
                raise InvokeError(f"layer {arn}: the download did not end within {DOWNLOAD_DEADLINE_S} s; try "
                                  "again, or pass the layer with --layer") from None
            raise InvokeError(f"layer {arn}: the download failed ({redact(str(error))[:200]}); try again") from None
        if base64.b64encode(digest.digest()).decode() != expected:
            raise InvokeError(f"layer {arn}: the download does not match the SHA-256 Lambda gives for it; try again")
        return {"arn": arn, "sha256": digest.hexdigest(), "bytes": written}

    cache.materialize_verified(entry, fill, ("arn", "sha256", "bytes"),
                               lambda meta: cache.intact(entry / "layer.zip", meta["bytes"], meta["sha256"]))
    return entry / "layer.zip"


def _left(deadline: float, arn: str) -> float:
    """The seconds left of the download's deadline; past it, the download stops."""
    left = deadline - time.monotonic()
    if left <= 0:
        raise InvokeError(f"layer {arn}: the download did not end within {DOWNLOAD_DEADLINE_S} s; try again, or "
                          "pass the layer with --layer")
    return left


def _tls_context() -> ssl.SSLContext:
    """The system's trust, and the bundle AWS's tools are pointed at (``AWS_CA_BUNDLE``), as boto3 trusts it."""
    context = ssl.create_default_context()
    if bundle := os.environ.get("AWS_CA_BUNDLE"):
        context.load_verify_locations(bundle)
    return context
