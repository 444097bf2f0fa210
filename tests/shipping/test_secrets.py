"""Secrets (layerkit.shipping.secrets): a private key or an AWS secret access key stops the build; a token in a
declaration is warned of and never decides the asset."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from layerkit.assemble.local_build import build_function, build_layer
from layerkit.core.errors import (
    SecretError,
)
from layerkit.core.targets import Target
from tests.conftest import make_wheel, write
from tests.helpers import (
    TARGET_312,
    assert_nothing_built,
    cli,
    layer_folder,
    names,
    one_line,
    one_line_cli_error,
    quiet,
)

# -- private indexes ------------------------------------------------------------------------------------


# -- 4. secrets stop the build ---------------------------------------------------------------------------------
def openssl(*args: str) -> str:
    return subprocess.run(["openssl", *args], capture_output=True, text=True, check=True).stdout


@pytest.fixture(scope="module")
def real_keys(tmp_path_factory) -> dict[str, str]:
    """Private keys as the tools that make them write them."""
    work = tmp_path_factory.mktemp("keys")
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(work / "id_ed25519")], check=True)
    return {
        "pkcs8": openssl("genpkey", "-algorithm", "ed25519"),
        "rsa": openssl("genrsa", "-traditional", "2048"),
        "ec": openssl("ecparam", "-name", "prime256v1", "-genkey", "-noout"),
        "encrypted": openssl("genpkey", "-algorithm", "ed25519", "-aes-128-cbc", "-pass", "pass:x"),
        "openssh": (work / "id_ed25519").read_text(),
    }


def test_a_token_written_into_the_file_is_warned_of_and_never_decides_the_asset(private_index, tmp_path):
    layer = layer_folder(tmp_path / "private", {"python/uses.py": "import kit_private\n"})

    def build_with(token: str):
        (layer / "requirements.txt").write_text(f"six==1.17.0\n--extra-index-url {private_index.url(('ci', token))}\n"
                                                "kit-private==1.0\n")
        return build_layer(layer, Target("python3.12", "x86_64"), cache_dir=tmp_path / "cache", report=quiet)

    first = build_with("token-one")
    assert first.packages == ["kit-private==1.0", "six==1.17.0"]
    (warning,) = first.warnings
    assert warning == (
        f"layer private: requirements.txt:2 writes a credential into a URL (http://***@127.0.0.1:{private_index.port}"
        "/simple/), where everyone who reads the file reads it; put the URL in the environment (PIP_INDEX_URL, "
        "UV_INDEX_URL) or write ${VAR} in the credential's place (the installer expands it): it never enters the "
        "asset hash either way")
    private_index.credentials = ("ci", "token-two")  # the token rotates, and the file is edited to match
    second = build_with("token-two")
    assert (second.asset_hash, second.cache) == (first.asset_hash, "hit")
    for path in [p for p in (tmp_path / "cache").rglob("*") if p.is_file()]:
        assert b"token-" not in path.read_bytes(), path


def test_a_refused_token_is_one_line_that_never_shows_it(private_index, tmp_path, monkeypatch):
    layer = layer_folder(tmp_path / "private", {"requirements.txt": "kit-private==1.0\n"})
    # uv's cache of its own: an earlier test's index on the same port would have left kit-private 1.0 in the
    # shared one, and an exact pin that uv's cache holds installs without asking the index.
    monkeypatch.setenv("UV_CACHE_DIR", str(tmp_path / "uv-cache"))
    monkeypatch.setenv("PIP_INDEX_URL", private_index.url(("ci", "expired-token")))
    message = one_line_cli_error(layer, tmp_path / "cache")
    assert "the package index refused the credentials" in message
    assert "expired-token" not in message


@pytest.mark.parametrize("kind", ["pkcs8", "rsa", "ec", "encrypted", "openssh"])
def test_a_private_key_in_the_users_folder_stops_the_build_naming_the_file(tmp_path, real_keys, kind):
    function = write(tmp_path / "fn", {"index.py": "def handler(e, c):\n    return 1\n",
                                       "certs/client.pem": "# the client's key\n" + real_keys[kind]})
    with pytest.raises(SecretError) as error:
        build_function(function, TARGET_312, cache_dir=tmp_path / "cache", report=quiet)
    assert str(error.value) == (
        "function fn: certs/client.pem (line 2) holds a private key, which would deploy with the code: remove it "
        "from the folder (read secrets at run time, from AWS Secrets Manager or SSM Parameter Store), or, if it is "
        "no secret, exclude the file (asset_excludes=[...])")
    assert_nothing_built(tmp_path / "cache")


@pytest.mark.parametrize("text", [
    'import boto3\nclient = boto3.client("s3", aws_secret_access_key="q3VtYq2ZJxL1u9kT0pSeW8rNc4fHd7aB6mXgY5vE")\n',
    "[default]\naws_access_key_id = AKIAQ5EXAMPLEAAAAAAA\n"
    "aws_secret_access_key = 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\n",
    '{"Credentials": {"AccessKeyId": "ASIAX", "SecretAccessKey": "q3VtYq2ZJxL1u9kT0pSeW8rNc4fHd7aB6mXgY5vE"}}\n',
], ids=["python", "credentials-file", "sts-json"])
def test_an_aws_secret_access_key_stops_the_layer_build(tmp_path, text):
    layer = write(tmp_path / "creds", {"python/config.py": "# settings\n\n" + text})
    result = cli("build", str(layer), "--runtime", "python3.12", "--arch", "x86_64", "--cache-dir",
                 str(tmp_path / "cache"))
    message = one_line(result)
    assert message.startswith("layerkit: error: layer creds: python/config.py (line ")
    assert "holds an AWS secret access key, which would deploy with the code" in message
    assert "q3VtYq2Z" not in result.stderr


def test_certificates_placeholders_and_installed_test_keys_pass(tmp_path, real_keys):
    pip_certifi = next(Path(sys.prefix).glob("lib/python3*/site-packages/pip/_vendor/certifi/cacert.pem"))
    layer = write(tmp_path / "fine", {
        "python/certs/cacert.pem": pip_certifi.read_text(),  # certifi's bundle, as a package vendors it
        "python/certs/system-bundle.pem": Path("/etc/ssl/certs/ca-certificates.crt").read_text(),
        "python/certs/self-signed.pem": openssl("req", "-x509", "-newkey", "ed25519", "-nodes", "-keyout",
                                                os.devnull, "-subj", "/CN=tests", "-days", "1"),
        "python/docs.py": 'EXAMPLE = "aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"\n'
                          'MARKER = "-----BEGIN RSA PRIVATE KEY-----"  # what a parser looks for\n',
        "requirements.txt": "./wheels/kit_keys-1.0-py3-none-any.whl\n",
        # A key the user keeps beside the code but excludes never ships, so it never stops the build.
        "python/local/dev.pem": real_keys["pkcs8"],
    })
    make_wheel(layer / "wheels", "kit-keys", {"kit_keys/tests/test_key.pem": real_keys["rsa"]})
    build = build_layer(layer, TARGET_312, cache_dir=tmp_path / "cache", report=quiet, bytecode=False,
                        excludes=("local",))
    assert "python/kit_keys/tests/test_key.pem" in names(build.zip)
