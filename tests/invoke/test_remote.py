"""Layers downloaded from AWS (layerkit.invoke.remote): over HTTPS, checked against Lambda's SHA-256, bounded in time,
size and redirects."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import pytest

from layerkit.assembly import Function, Layer, LayerUse
from layerkit.core.errors import InvokeError
from layerkit.invoke import remote
from tests.aws_standin import StandInAws
from tests.helpers import ARN, PARAMETER


@pytest.fixture
def aws(tmp_path, monkeypatch):
    layer = tmp_path / "layer.zip"
    with zipfile.ZipFile(layer, "w") as archive:
        archive.writestr("python/common.py", "WHO = 'the platform team'\n")
    stand_in = StandInAws(layer, tmp_path, ARN, PARAMETER)
    for name in [n for n in os.environ if n.startswith("AWS_")]:
        monkeypatch.delenv(name)
    for name, value in stand_in.environment(tmp_path).items():
        monkeypatch.setenv(name, value)
    yield stand_in
    stand_in.close()


def function_using(name: str) -> Function:
    return Function(id="team/Fn", stack="team", logical_id="Fn", handler="index.handler", runtime="python3.12",
                    architecture="x86_64", memory_mb=128, timeout_s=3, environment={}, code=Path(),
                    layers=(LayerUse(Layer.elsewhere(name), "ssm", name),))


def download(name: str, tmp_path: Path) -> Path:
    (use,) = remote.resolve(function_using(name), cache_dir=tmp_path / "cache").layers
    assert use.layer.asset is not None
    return use.layer.asset


def test_a_layer_is_downloaded_over_https_and_checked(aws, tmp_path):
    path = download(PARAMETER, tmp_path)
    with zipfile.ZipFile(path) as archive:
        assert archive.namelist() == ["python/common.py"]
    assert aws.requests == ["AmazonSSM.GetParameter", "/2018-10-31/layers", "/layer.zip"]


@pytest.mark.parametrize(("behaviour", "message"), [
    ({"location": "file:///etc/hostname"}, "its download location is not an HTTPS URL (file)"),
    ({"location": "http://127.0.0.1:9/layer.zip"}, "its download location is not an HTTPS URL (http)"),
    ({"code_sha256": None}, "Lambda's answer has no CodeSha256, so the download cannot be checked"),
    ({"code_sha256": "AAAA"}, "the download does not match the SHA-256 Lambda gives for it"),
    ({"code_size": 400_000_000}, "Lambda says it is 400000000 bytes, over its own limit"),
    ({"parameter_value": "not-an-arn"}, "SSM parameter /platform/layers/common/arn holds 'not-an-arn', not a layer "
                                        "version ARN"),
], ids=["file-url", "http-url", "no-sha256", "wrong-sha256", "too-large-said", "not-an-arn"])
def test_a_download_that_cannot_be_trusted_is_refused_in_one_line(aws, tmp_path, behaviour, message):
    for key, value in behaviour.items():
        setattr(aws.behaviour, key, value)
    with pytest.raises(InvokeError, match=message.replace("(", r"\(").replace(")", r"\)")):
        download(PARAMETER, tmp_path)
    assert not list((tmp_path / "cache").rglob("layer.zip")), "a refused download was kept"


def test_a_redirect_to_another_host_is_not_followed(aws, tmp_path):
    aws.behaviour.location = f"{aws.url}/redirect?to=https://localhost:{aws.port}/layer.zip"
    with pytest.raises(InvokeError, match="redirects to https://localhost, another host than the one Lambda named"):
        download(PARAMETER, tmp_path)


def test_a_redirect_on_the_same_host_is_followed(aws, tmp_path):
    aws.behaviour.location = f"{aws.url}/redirect?to={aws.url}/layer.zip"
    assert zipfile.is_zipfile(download(PARAMETER, tmp_path))


def test_a_download_that_trickles_stops_at_the_deadline(aws, tmp_path, monkeypatch):
    monkeypatch.setattr(remote, "DOWNLOAD_DEADLINE_S", 3)
    aws.behaviour.trickle_s = 1.0
    aws.behaviour.body_bytes = 100
    with pytest.raises(InvokeError, match="the download did not end within 3 s"):
        download(PARAMETER, tmp_path)


def test_a_body_larger_than_lambdas_limit_is_stopped_with_bounded_memory(aws, tmp_path):
    """No CodeSize, and 400 MB of body: the kit stops at Lambda's limit, never holding it in memory."""
    aws.behaviour.code_size = None
    aws.behaviour.body_bytes = 400_000_000
    probe = tmp_path / "probe.py"
    probe.write_text(textwrap.dedent(f"""
        import json, sys
        sys.path.insert(0, {str(Path(__file__).parents[2])!r})
        from layerkit.core.errors import InvokeError
        from tests.invoke.test_remote import PARAMETER, download
        from pathlib import Path

        def peak_mb():  # this process's own peak (getrusage's would count the parent's at the fork)
            status = open("/proc/self/status").read()
            return int(status.split("VmHWM:")[1].split()[0]) // 1024

        try:
            download(PARAMETER, Path({str(tmp_path)!r}))
            message = "downloaded"
        except InvokeError as error:
            message = str(error)
        print(json.dumps({{"message": message,
                           "peak_mb": peak_mb()}}))
    """))
    result = subprocess.run([sys.executable, str(probe)], capture_output=True, text=True, timeout=300)
    outcome = json.loads(result.stdout.strip().splitlines()[-1])
    assert "the download is over 262144000 bytes, Lambda's own limit for a layer" in outcome["message"]
    assert outcome["peak_mb"] < 150, outcome
