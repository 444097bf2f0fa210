"""What ships is exactly what should: no file of the build machine, no secret, no stray folder, nothing over Lambda's
limits. Each case is tried as an attacker, or a new user's folder, would try it."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from aws_cdk import App, Stack
from aws_cdk import aws_lambda as lambda_

import layerkit
from layerkit.assemble.local_build import build_function, build_layer
from layerkit.core.errors import BuildError, LayerSourceError, SecretError, UnsafeContentError
from layerkit.core.targets import Target
from layerkit.installed.slim import Slim
from tests.conftest import ROOT, app_context, make_wheel, synth_messages, write

PY312 = Target("python3.12", "x86_64")
quiet = lambda _: None  # noqa: E731



def record_hash(data: bytes) -> str:
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def wheel_with(folder: Path, name: str, files: dict[str, bytes], version: str = "1.0") -> Path:
    """A wheel of ``files`` (paths inside the wheel, written as given: nothing checks them) with a RECORD."""
    dist = f"{name}-{version}"
    files = {**files,
             f"{dist}.dist-info/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n".encode(),
             f"{dist}.dist-info/WHEEL": b"Wheel-Version: 1.0\nGenerator: tests\nRoot-Is-Purelib: true\n"
                                        b"Tag: py3-none-any\n"}
    rows = [f"{path},{record_hash(data)},{len(data)}" for path, data in files.items()]
    folder.mkdir(parents=True, exist_ok=True)
    wheel = folder / f"{dist}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w", zipfile.ZIP_DEFLATED) as archive:
        for path, data in files.items():
            archive.writestr(path, data)
        archive.writestr(f"{dist}.dist-info/RECORD", "\n".join([*rows, f"{dist}.dist-info/RECORD,,"]) + "\n")
    return wheel


def hostile_wheel(folder: Path) -> Path:
    """A plain wheel (nothing runs at install) that carries a second dist-info as data, whose RECORD names files of
    the machine that installs it."""
    fake = "evil-1.0.data/purelib/fake-1.0.dist-info"
    return wheel_with(folder, "evil", {
        "evil.py": b"X = 1\n",
        f"{fake}/METADATA": b"Metadata-Version: 2.1\nName: fake\nVersion: 1.0\n",
        f"{fake}/RECORD": b"/etc/passwd,,\n../../../../../../../../etc/hostname,,\n/proc/self/environ,,\n",
    })


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "layerkit.cli", *args], capture_output=True, text=True, timeout=600,
                          env={**os.environ, **(env or {})})


def one_line(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 1, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("layerkit: error:")]
    assert len(errors) == 1, result.stderr
    return errors[0]


def names(zip_path: Path) -> list[str]:
    with zipfile.ZipFile(zip_path) as archive:
        return sorted(n for n in archive.namelist() if not n.endswith("/"))


def assert_nothing_built(cache: Path) -> None:
    for kind in ("builds", "packages"):
        folder = cache / kind
        entries = [p for p in folder.iterdir() if not p.name.startswith(".")] if folder.exists() else []
        assert entries == [], f"{kind} holds {entries}"


# -- 1. every member is a relative path inside the zip --------------------------------------------------------
@pytest.mark.parametrize("kind", ["layer", "function"])
def test_a_wheel_whose_record_names_files_of_the_build_machine_stops_the_build(tmp_path, kind):
    folder = write(tmp_path / kind, {"python/mod.py" if kind == "layer" else "index.py": "def handler(e, c):\n    1\n",
                                     "requirements.txt": "./wheels/evil-1.0-py3-none-any.whl\n"})
    hostile_wheel(folder / "wheels")
    cache = tmp_path / "cache"
    if kind == "layer":
        result = cli("build", str(folder), "--runtime", "python3.12", "--arch", "x86_64", "--cache-dir", str(cache),
                     env={"FAKE_SECRET": "hunter2-in-the-environment"})
        message = one_line(result)
        assert message == (
            "layerkit: error: layer layer: fake-1.0.dist-info (installed as a data file of evil-1.0) has a RECORD "
            "that names '/etc/passwd', an absolute path: a file outside the folder it was installed in: such a "
            "wheel is broken or hostile, and nothing of it is built for python3.12/x86_64; remove the requirement "
            "that brings it")
    else:
        with pytest.raises(UnsafeContentError, match=r"fake-1.0.dist-info .* names '/etc/passwd'"):
            build_function(folder, PY312, cache_dir=cache, report=quiet)
    assert_nothing_built(cache)
    leaked = [p for p in cache.rglob("*") if p.is_file() and b"hunter2-in-the-environment" in p.read_bytes()]
    assert leaked == []


@pytest.mark.parametrize("row", ["../../../../../../../../etc/hostname", "pkg\\..\\..\\x.py", "pkg//x.py"])
def test_every_kind_of_row_outside_the_folder_is_refused(tmp_path, row):
    layer = write(tmp_path / "layer", {"python/mod.py": "", "requirements.txt": "./wheels/sly-1.0-py3-none-any.whl\n"})
    wheel_with(layer / "wheels", "sly", {"sly.py": b"", "sly-1.0.data/purelib/odd-1.0.dist-info/RECORD":
                                         f"{row},,\n".encode()})
    with pytest.raises(UnsafeContentError, match=r"odd-1\.0\.dist-info .* has a RECORD that names"):
        build_layer(layer, PY312, cache_dir=tmp_path / "cache", report=quiet, bytecode=False)


def test_a_record_row_that_leads_out_through_a_link_is_refused(tmp_path):
    from layerkit.installed import record

    site = tmp_path / "site"
    (site / "pkg-1.0.dist-info").mkdir(parents=True)
    (site / "pkg").symlink_to("/etc")
    (site / "pkg-1.0.dist-info" / "RECORD").write_text("pkg/passwd,,\n")
    with pytest.raises(record.UnsafeRecordError, match="leads to /etc/passwd through a link"):
        record.rows(site, "pkg-1.0.dist-info")
    (site / "pkg").unlink()
    (site / "pkg").mkdir()
    (site / "pkg" / "hosts").symlink_to("/etc/hosts")  # the file itself a link, its folder a plain one
    (site / "pkg-1.0.dist-info" / "RECORD").write_text("pkg/__init__.py,,\npkg/hosts,,\n")
    with pytest.raises(record.UnsafeRecordError, match="'pkg/hosts', which leads to /etc/hosts through a link"):
        record.rows(site, "pkg-1.0.dist-info")


def test_layerkit_check_refuses_an_asset_that_names_or_links_to_files_outside_itself(tmp_path, kit_cache):
    hostile_zip = tmp_path / "hostile.zip"
    with zipfile.ZipFile(hostile_zip, "w") as archive:
        archive.writestr("python/mod.py", "")
        archive.writestr(zipfile.ZipInfo("python/../../etc/cron.d/job"), "* * * * * root true\n")
    linked = write(tmp_path / "linked", {"python/mod.py": ""})
    (linked / "python" / "hostname").symlink_to("/etc/hostname")
    leaking = write(tmp_path / "leaking", {"python/mod.py": ""})
    (leaking / "python" / "environ").symlink_to("/proc/self/environ")
    code = write(tmp_path / "code", {"index.py": "def handler(e, c):\n    return 1\n"})
    cdk_app = App(outdir=str(tmp_path / "cdk.out"), context=app_context())
    stack = Stack(cdk_app, "S")
    layers = [lambda_.LayerVersion(stack, "Zip", code=lambda_.Code.from_asset(str(hostile_zip))),
              lambda_.LayerVersion(stack, "Folder", code=lambda_.Code.from_asset(str(linked))),
              lambda_.LayerVersion(stack, "Leaking", code=lambda_.Code.from_asset(str(leaking)))]
    lambda_.Function(stack, "Fn", runtime=lambda_.Runtime.PYTHON_3_12, handler="index.handler",
                     code=lambda_.Code.from_asset(str(code)), layers=layers)
    layerkit.check(cdk_app)
    found = {(path, level, rule) for path, level, text in synth_messages(cdk_app)
             for rule in ("unsafe-path", "unsafe-link", "link-outside") if f"[layerkit:{rule}]" in text}
    assert found == {("/S/Zip", "error", "unsafe-path"), ("/S/Leaking", "error", "unsafe-link"),
                     ("/S/Folder", "warning", "link-outside")}


# -- 2. one rule for links; only regular files and folders -----------------------------------------------------
@pytest.fixture
def monorepo(tmp_path):
    """A layer and a function that link shared code from elsewhere in a repository."""
    shared = write(tmp_path / "repo" / "shared", {"kit_shared/__init__.py": "WHO = 'shared'\n",
                                                  "settings.txt": "region = eu-west-1\n"})
    layer = write(tmp_path / "repo" / "layers" / "linked", {"python/own.py": "X = 1\n"})
    (layer / "python" / "kit_shared").symlink_to(shared / "kit_shared")
    (layer / "python" / "settings.txt").symlink_to(shared / "settings.txt")
    function = write(tmp_path / "repo" / "lambdas" / "fn", {"index.py": "import kit_shared\n\ndef handler(e, c):\n"
                                                                        "    return kit_shared.WHO\n"})
    (function / "kit_shared").symlink_to(shared / "kit_shared")
    return shared, layer, function


def test_links_to_files_and_folders_are_followed_alike_and_warned_about_when_they_lead_outside(tmp_path, monorepo):
    shared, layer, function = monorepo
    reports: list[str] = []
    build = build_layer(layer, PY312, cache_dir=tmp_path / "cache", report=reports.append, bytecode=False)
    assert names(build.zip) == ["python/kit_shared/__init__.py", "python/own.py", "python/settings.txt"]
    with zipfile.ZipFile(build.zip) as archive:
        assert archive.read("python/kit_shared/__init__.py") == b"WHO = 'shared'\n"
    outside = sorted(w for w in build.warnings if "outside the layer folder" in w)
    assert outside == [
        f"layer linked: python/kit_shared is a link to {shared / 'kit_shared'}, outside the layer folder: its files "
        "ship (as the CDK ships them); move them into the folder if that is not meant",
        f"layer linked: python/settings.txt is a link to {shared / 'settings.txt'}, outside the layer folder: its "
        "files ship (as the CDK ships them); move them into the folder if that is not meant",
    ]
    fn = build_function(function, PY312, cache_dir=tmp_path / "cache", report=quiet, bytecode=False)
    assert names(fn.zip) == ["index.py", "kit_shared/__init__.py"]
    # Fingerprinted by what they reach: an edit of the shared code is a new asset.
    (shared / "kit_shared" / "__init__.py").write_text("WHO = 'edited'\n")
    assert build_layer(layer, PY312, cache_dir=tmp_path / "cache", report=quiet,
                       bytecode=False).asset_hash != build.asset_hash


def test_a_link_inside_the_folder_ships_without_a_warning(tmp_path):
    layer = write(tmp_path / "aliased", {"python/real/__init__.py": "X = 1\n"})
    (layer / "python" / "alias").symlink_to("real")
    build = build_layer(layer, PY312, cache_dir=tmp_path / "cache", report=quiet, bytecode=False)
    assert names(build.zip) == ["python/alias/__init__.py", "python/real/__init__.py"]
    assert build.warnings == []


@pytest.mark.parametrize(("make", "message"), [
    (lambda p: (p / "environ").symlink_to("/proc/self/environ"),
     r"python/environ is a link to /proc/self/environ \(/proc/\d+/environ\), a pseudo-file of this machine"),
    (lambda p: (p / "loop").symlink_to("."), r"python/loop is a link to \., a folder that holds the link itself"),
    (lambda p: (p / "gone").symlink_to("nowhere.py"), r"python/gone is a link to nowhere.py, which does not exist"),
    (lambda p: (p / "null").symlink_to("/dev/null"),
     r"python/null is a link to /dev/null \(/dev/null\), a pseudo-file"),
    (lambda p: os.mkfifo(p / "pipe"), r"python/pipe is a FIFO; only regular files and folders ship"),
], ids=["proc", "loop", "dangling", "device", "fifo"])
def test_anything_but_a_regular_file_or_folder_stops_the_build_naming_it(tmp_path, make, message):
    layer = write(tmp_path / "odd", {"python/mod.py": ""})
    make(layer / "python")
    with pytest.raises(LayerSourceError, match=message):
        build_layer(layer, PY312, cache_dir=tmp_path / "cache", report=quiet)
    result = cli("build", str(layer), "--runtime", "python3.12", "--arch", "x86_64", "--cache-dir",
                 str(tmp_path / "cache"))
    one_line(result)
    assert_nothing_built(tmp_path / "cache")


# -- 3. the never-deploy list, the same for layers and functions -----------------------------------------------
NEVER = {".env": "DB_PASSWORD=hunter2\n", ".env.local": "X=1\n", "venv/lib/site.py": "", "env/bin/activate": "",
         "ENV/x": "", ".venv/x": "", ".idea/workspace.xml": "", ".vscode/settings.json": "{}",
         "htmlcov/index.html": "", ".nox/x": "", ".tox/x": "", ".coverage": "", ".aws-sam/build.toml": "",
         ".gitignore": "*.pyc\n", ".git/HEAD": "ref: x\n", "pip-log.txt": "", "cdk.out/manifest.json": "{}",
         "node_modules/x/index.js": "", "pkg.egg-info/PKG-INFO": "", "__pycache__/x.cpython-312.pyc": "",
         ".pytest_cache/v": "", ".mypy_cache/x": "", ".DS_Store": "", "sub/.env": "SECRET=1\n"}


def test_what_never_deploys_from_a_function_folder(tmp_path):
    function = write(tmp_path / "fn", {"index.py": "def handler(e, c):\n    return 1\n", "lib/helpers.py": "",
                                       **NEVER})
    build = build_function(function, PY312, cache_dir=tmp_path / "cache", report=quiet, bytecode=False)
    assert names(build.zip) == ["index.py", "lib/helpers.py"]


def test_what_never_deploys_from_a_layer_and_what_it_excludes(tmp_path, kit_cache):
    layer = write(tmp_path / "layer", {**{f"python/{k}": v for k, v in NEVER.items()}, "python/mod.py": "",
                                       "python/README.md": "", "python/fixtures/big.json": "{}"})
    build = build_layer(layer, PY312, cache_dir=tmp_path / "cache", report=quiet, bytecode=False,
                        excludes=("*.md", "fixtures"))
    assert names(build.zip) == ["python/mod.py"]
    stack = Stack(App(context=app_context()), "S")
    shared = layerkit.SharedPythonLayer(stack, "L", entry=layer, runtime=lambda_.Runtime.PYTHON_3_12,
                                        bytecode=False, asset_excludes=["*.md", "fixtures"])
    assert names(shared.code.content) == ["python/mod.py"]
    result = cli("build", str(layer), "--runtime", "python3.12", "--arch", "x86_64", "--no-bytecode", "--json",
                 "--exclude", "*.md", "--exclude", "fixtures", "--cache-dir", str(tmp_path / "cache"))
    assert result.returncode == 0, result.stderr
    assert names(Path(json.loads(result.stdout)["zip"])) == ["python/mod.py"]


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


@pytest.mark.parametrize("kind", ["pkcs8", "rsa", "ec", "encrypted", "openssh"])
def test_a_private_key_in_the_users_folder_stops_the_build_naming_the_file(tmp_path, real_keys, kind):
    function = write(tmp_path / "fn", {"index.py": "def handler(e, c):\n    return 1\n",
                                       "certs/client.pem": "# the client's key\n" + real_keys[kind]})
    with pytest.raises(SecretError) as error:
        build_function(function, PY312, cache_dir=tmp_path / "cache", report=quiet)
    assert str(error.value) == (
        "function fn: certs/client.pem (line 2) holds a private key, which would deploy with the code: remove it "
        "from the folder (read secrets at run time, from AWS Secrets Manager or SSM Parameter Store), or, if it is "
        "no secret, exclude the file (asset_excludes)")
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
    build = build_layer(layer, PY312, cache_dir=tmp_path / "cache", report=quiet, bytecode=False,
                        excludes=("local",))
    assert "python/kit_keys/tests/test_key.pem" in names(build.zip)


# -- 5. the user's folder is never written ---------------------------------------------------------------------
def test_a_function_folder_that_is_its_own_package_is_never_written_and_builds_the_same_twice(tmp_path):
    function = write(tmp_path / "fn", {
        "pyproject.toml": '[build-system]\nrequires = ["setuptools>=68"]\nbuild-backend = "setuptools.build_meta"\n\n'
                          '[project]\nname = "kit-fn"\nversion = "0.1"\n\n[tool.setuptools]\npackages = ["kit_fn"]\n',
        "kit_fn/__init__.py": "ANSWER = 42\n",
        "index.py": "from kit_fn import ANSWER\n\ndef handler(e, c):\n    return ANSWER\n",
        "requirements.txt": ".\n",
    })
    before = sorted(p.relative_to(function).as_posix() for p in function.rglob("*"))
    first = build_function(function, PY312, cache_dir=tmp_path / "a", report=quiet)
    second = build_function(function, PY312, cache_dir=tmp_path / "b", report=quiet)
    assert sorted(p.relative_to(function).as_posix() for p in function.rglob("*")) == before
    assert (first.sha256, first.asset_hash) == (second.sha256, second.asset_hash)
    assert "kit_fn-0.1.dist-info/METADATA" in names(first.zip)


# -- 6. Lambda's limits in every command, and the tools to meet them -------------------------------------------
def sparse(path: Path, size: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as file:
        file.truncate(size)
    return path


def cli_with_peak_memory(*args: str) -> tuple[subprocess.CompletedProcess, float]:
    """The CLI's result and the peak resident memory (MB) of the kit's own process (its VmHWM: getrusage's maxrss
    would count the memory of the process that forked it, kept across exec)."""
    code = ("import runpy, sys; sys.argv = ['layerkit', *sys.argv[1:]]\n"
            "try:\n    runpy.run_module('layerkit.cli', run_name='__main__')\n"
            "finally:\n    print(next(line.split()[1] for line in open('/proc/self/status') "
            "if line.startswith('VmHWM:')), file=sys.stderr)\n")
    result = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=600)
    *rest, peak = result.stderr.rstrip("\n").split("\n")
    return subprocess.CompletedProcess(result.args, result.returncode, result.stdout, "\n".join(rest) + "\n"), \
        int(peak) / 1024


def test_a_large_file_is_compressed_with_bounded_memory_and_a_layer_over_the_limit_says_what_would_fit(tmp_path):
    layer = tmp_path / "heavy"
    sparse(layer / "python" / "data" / "model.bin", 200 * 1024 * 1024)
    tests = {f"kit_heavy/tests/data_{i}.bin": bytes(20 * 1024 * 1024) for i in range(3)}
    wheel_with(layer / "wheels", "kit_heavy", {"kit_heavy/__init__.py": b"", **tests})
    write(layer, {"requirements.txt": "./wheels/kit_heavy-1.0-py3-none-any.whl\n"})
    cache = str(tmp_path / "cache")
    over, peak = cli_with_peak_memory("build", str(layer), "--runtime", "python3.12", "--arch", "x86_64",
                                      "--cache-dir", cache)
    assert one_line(over) == (
        "layerkit: error: layer heavy is 260 MB unzipped; Lambda allows 250 MB for a function's code and all its "
        "layers. Measured on it: the packages' tests/ folders 60 MB (--slim tests). Leaving out the packages' "
        "tests/ folders makes it 200 MB, which fits.")
    assert peak < 150, f"the build held {peak:.0f} MB: a 200 MB file was read whole"
    fits = cli("build", str(layer), "--runtime", "python3.12", "--arch", "x86_64", "--cache-dir", cache,
               "--slim", "tests", "--json")
    assert fits.returncode == 0, fits.stderr
    built = json.loads(fits.stdout)
    assert built["unzipped_bytes"] < 210 * 1024 * 1024
    assert not [n for n in names(Path(built["zip"])) if "/tests/" in n]
    assert "over 80% of Lambda's 250 MB limit" in fits.stderr  # near the limit: said by the build, not only the synth


def test_a_member_over_the_limit_on_its_own_is_refused_before_it_is_read(tmp_path):
    layer = write(tmp_path / "huge", {"python/mod.py": "",
                                      "requirements.txt": "./wheels/kit_huge-1.0-py3-none-any.whl\n"})
    wheel = layer / "wheels" / "kit_huge-1.0-py3-none-any.whl"
    wheel_with(wheel.parent, "kit_huge", {"kit_huge/__init__.py": b""})
    with zipfile.ZipFile(wheel, "a", zipfile.ZIP_DEFLATED, compresslevel=1) as archive, \
            archive.open("kit_huge/weights.bin", "w", force_zip64=True) as member:
        piece = bytes(16 * 1024 * 1024)
        for _ in range(64):  # 1 GiB of zeros, written in pieces (the RECORD does not list it: nothing checks)
            member.write(piece)
    result, peak = cli_with_peak_memory("build", str(layer), "--runtime", "python3.12", "--arch", "x86_64",
                                        "--cache-dir", str(tmp_path / "cache"))
    message = one_line(result)
    assert message.startswith("layerkit: error: layer huge: kit_huge/weights.bin from kit-huge==1.0 is 1024 MB on "
                              "its own, over Lambda's 250 MB")
    assert peak < 150


def test_a_file_of_the_folder_over_the_limit_is_refused_before_it_is_read(tmp_path):
    layer = write(tmp_path / "bigfile", {"python/mod.py": ""})
    sparse(layer / "python" / "blob.bin", 300 * 1024 * 1024)
    with pytest.raises(LayerSourceError, match=r"blob.bin is 300 MB on its own, over Lambda's limit of 250 MB"):
        build_layer(layer, PY312, cache_dir=tmp_path / "cache", report=quiet)


def test_invoke_refuses_a_function_lambda_would_refuse_for_its_size(tmp_path, kit_cache):
    layer_zip = tmp_path / "big.zip"
    with zipfile.ZipFile(layer_zip, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as archive:
        archive.writestr("python/data.bin", bytes(260 * 1024 * 1024))
    code = write(tmp_path / "code", {"index.py": "def handler(e, c):\n    return 1\n"})
    cdk_app = App(outdir=str(tmp_path / "cdk.out"), context=app_context())  # no layerkit.check: the synth passes
    stack = Stack(cdk_app, "S")
    lambda_.Function(stack, "Fn", runtime=lambda_.Runtime.PYTHON_3_12, handler="index.handler",
                     code=lambda_.Code.from_asset(str(code)),
                     layers=[lambda_.LayerVersion(stack, "Big", code=lambda_.Code.from_asset(str(layer_zip)))])
    cdk_app.synth()
    message = one_line(cli("invoke", "--assembly", str(tmp_path / "cdk.out"), "S/Fn", "--backend", "sandbox"))
    assert message.startswith("layerkit: error: function S/Fn: code plus layers is 260 MB unzipped; Lambda allows "
                              "250 MB for a function's code and all its layers.")
    assert message.endswith("Lambda would refuse to create it, so it is not invoked.")


def test_debug_symbols_are_stripped_for_either_architecture_and_the_code_still_loads(tmp_path, python312):
    from layerkit.installed import elf

    source = tmp_path / "answer.c"
    source.write_text('#include <Python.h>\nstatic PyObject *answer(PyObject *s, PyObject *a) { return '
                      'PyLong_FromLong(42); }\nstatic PyMethodDef M[] = {{"answer", answer, METH_NOARGS, 0}, {0}};\n'
                      'static struct PyModuleDef D = {PyModuleDef_HEAD_INIT, "kit_answer", 0, -1, M};\n'
                      'PyMODINIT_FUNC PyInit_kit_answer(void) { return PyModule_Create(&D); }\n')
    include = subprocess.run([str(python312), "-c", "import sysconfig; print(sysconfig.get_paths()['include'])"],
                             capture_output=True, text=True, check=True).stdout.strip()
    so = tmp_path / "kit_answer.cpython-312-x86_64-linux-gnu.so"
    subprocess.run(["gcc", "-g3", "-O0", "-shared", "-fPIC", f"-I{include}", "-o", str(so), str(source)], check=True)
    stripped = tmp_path / "stripped.so"
    saved = elf.strip_file(so, stripped)
    assert saved > 10_000
    assert saved == so.stat().st_size - stripped.stat().st_size
    assert elf.debug_bytes_of(so) >= saved - 64 * 20
    sections = subprocess.run(["readelf", "-S", "-W", str(stripped)], capture_output=True, text=True, check=True)
    assert ".debug_info" not in sections.stdout
    assert ".symtab" not in sections.stdout
    assert "Warning" not in sections.stderr
    loaded = tmp_path / "load"
    loaded.mkdir()
    shutil.copy(stripped, loaded / so.name)
    check = subprocess.run([str(python312), "-I", "-S", "-c", f"import sys; sys.path[:0] = [{str(loaded)!r}]; "
                            "import kit_answer; print(kit_answer.answer())"], capture_output=True, text=True)
    assert (check.returncode, check.stdout.strip()) == (0, "42"), check.stderr
    # An arm64 .so on this x86_64 machine: the same sections go, read from the file's format alone.
    arm = bytearray(so.read_bytes())
    arm[18:20] = (183).to_bytes(2, "little")  # EM_AARCH64
    stripped_arm = elf.strip(bytes(arm))
    assert stripped_arm[18:20] == (183).to_bytes(2, "little")
    assert len(stripped_arm) == stripped.stat().st_size


def test_a_layer_leaves_out_what_slim_names_and_says_the_runtimes_copy_applies(tmp_path):
    layer = write(tmp_path / "sdk", {"python/mod.py": "", "requirements.txt": "boto3==1.40.0\nsix==1.17.0\n"})
    reports: list[str] = []
    build = build_layer(layer, PY312, cache_dir=tmp_path / "cache", report=reports.append, bytecode=False,
                        slim=Slim(without=("boto3", "botocore", "Six")))
    shipped = {n.split("/")[1] for n in names(build.zip)}
    assert not {"boto3", "botocore", "six.py"} & shipped
    assert {"s3transfer", "jmespath"} <= shipped
    assert sorted(pin.split("==")[0] for pin in build.left_out) == ["boto3", "botocore", "six"]
    assert any("left out: on Lambda the python3.12 runtime's own copy applies" in r for r in reports), reports
    plain = build_layer(layer, PY312, cache_dir=tmp_path / "cache", report=quiet, bytecode=False)
    assert plain.asset_hash != build.asset_hash


# -- 7. Requires-Python -----------------------------------------------------------------------------------------
def test_a_release_whose_requires_python_excludes_the_runtime_is_refused_naming_one_that_fits(tmp_path):
    from tests.package_index import PackageIndex

    wheels = tmp_path / "index"
    make_wheel(wheels, "kit-backport", {"kit_backport.py": "OLD = True\n"}, version="0.6")
    make_wheel(wheels, "kit-backport", {"kit_backport.py": "OLD = True\n"}, version="0.8",
               requires_python=">=3.6, <3.7")
    index = PackageIndex(wheels)
    try:
        layer = write(tmp_path / "old", {"python/mod.py": "", "requirements.txt": f"--index-url {index.url()}\n"
                                                                                   "kit-backport\n"})
        with pytest.raises(BuildError) as error:
            build_layer(layer, PY312, cache_dir=tmp_path / "cache", report=quiet)
    finally:
        index.close()
    assert str(error.value) == (
        "layer old: kit-backport==0.8 requires Python >=3.6, <3.7, and python3.12 is Python 3.12: pin "
        "kit-backport==0.6, the newest release that supports it, or drop it if the standard library has it")


# -- 8. lock freshness as the lock's own tool decides it -------------------------------------------------------
UV_PROJECTS = {  # pyproject.toml tables beside [project]; each is locked by uv, then maybe edited
    "plain": "",
    "legacy-dev-dependencies-empty": "[tool.uv]\ndev-dependencies = []\n",
    "legacy-dev-dependencies": '[tool.uv]\ndev-dependencies = ["kit-devtool==1.0"]\n',
    "legacy-and-groups": '[dependency-groups]\ndev = ["six==1.17.0"]\n\n[tool.uv]\ndev-dependencies = '
                         '["kit-devtool==1.0"]\n',
    "extras": '[project.optional-dependencies]\ncli = ["kit-devtool==1.0; sys_platform == \'linux\'"]\n',
    "constraints": '[tool.uv]\nconstraint-dependencies = ["six<2"]\n',
}
EDITS = {  # (case, edit of pyproject.toml after locking)
    "fresh": lambda text: text,
    "dependency": lambda text: text.replace('"python-dateutil<3"', '"python-dateutil<2.10"'),
    "dev": lambda text: text.replace('"kit-devtool==1.0"', '"kit-devtool>=1.0"'),
    "extra-added": lambda text: text + '\n[project.optional-dependencies]\nextra = ["six==1.17.0"]\n'
    if "[project.optional-dependencies]" not in text else text.replace("cli = [", "cli = [\"six==1.17.0\", "),
    "constraint": lambda text: text.replace('"six<2"', '"six<3"'),
}


@pytest.mark.parametrize("edit", list(EDITS))
@pytest.mark.parametrize("project", list(UV_PROJECTS))
def test_the_kits_lock_check_agrees_with_uv_lock_check(locked, tmp_path, project, edit, python312):
    from layerkit.core import uv
    from layerkit.core.errors import DeclarationError
    from layerkit.sources.uvlock import check_fresh

    folder = tmp_path / project
    folder.mkdir()
    pyproject = folder / "pyproject.toml"
    pyproject.write_text('[project]\nname = "kit-lock"\nversion = "0"\nrequires-python = ">=3.12"\n'
                         'dependencies = ["python-dateutil<3"]\n\n' + UV_PROJECTS[project])
    env = {**os.environ, "UV_PYTHON_DOWNLOADS": "never"}
    command = [uv.binary(), "lock", "--default-index", locked.index.url(), "--python", str(python312), "--quiet"]
    subprocess.run(command, cwd=folder, env=env, check=True, capture_output=True)
    pyproject.write_text(EDITS[edit](pyproject.read_text()))
    uv_says_fresh = subprocess.run([*command, "--check", "--offline"], cwd=folder, env=env,
                                   capture_output=True).returncode == 0
    try:
        check_fresh(folder / "uv.lock", pyproject)
        kit_says_fresh = True
    except DeclarationError:
        kit_says_fresh = False
    assert kit_says_fresh == uv_says_fresh, f"uv lock --check says {'fresh' if uv_says_fresh else 'stale'}"


# -- 9. cache faults are mended, never a traceback -------------------------------------------------------------
def test_an_entry_missing_its_fields_is_rebuilt_not_a_traceback(tmp_path):
    layer = write(tmp_path / "layer", {"python/mod.py": "X = 1\n", "requirements.txt": "six==1.17.0\n"})
    cache = tmp_path / "cache"
    first = build_layer(layer, PY312, cache_dir=cache, report=quiet)
    for entry in [*(cache / "builds").iterdir(), *(cache / "packages").iterdir()]:
        if (entry / "entry.json").is_file():
            (entry / "entry.json").write_text("{}")
    result = cli("build", str(layer), "--runtime", "python3.12", "--arch", "x86_64", "--json", "--cache-dir",
                 str(cache))
    assert result.returncode == 0, result.stderr
    again = json.loads(result.stdout)
    assert (again["cache"], again["sha256"]) == ("miss", first.sha256)


def test_a_failed_build_leaves_no_lock_files_or_scratch_folders(tmp_path):
    layer = write(tmp_path / "layer", {"python/mod.py": "", "requirements.txt": "docopt==0.6.2\n"})  # no wheel
    for _ in range(2):
        one_line(cli("build", str(layer), "--runtime", "python3.12", "--arch", "x86_64", "--cache-dir",
                     str(tmp_path / "cache")))
    assert sorted(p.name for p in (tmp_path / "cache").rglob(".tmp-*")) == []


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a small file system needs root")
def test_a_full_disk_names_the_cache_folder_and_the_space_needed(tmp_path):
    small = tmp_path / "small"
    small.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(small)], check=True)
    try:
        layer = write(tmp_path / "layer", {"python/mod.py": "", "python/data.bin": os.urandom(6 * 1024 * 1024)})
        result = cli("build", str(layer), "--runtime", "python3.12", "--arch", "x86_64", "--no-bytecode",
                     "--cache-dir", str(small / "cache"))
        message = one_line(result)
        assert message.startswith(f"layerkit: error: the disk of the layerkit cache {small / 'cache'} is full (")
        assert "MB there and needed more): free some space, or point LAYERKIT_CACHE_DIR at a larger disk" in message
        assert [p for p in small.rglob("*") if p.is_file() and p.stat().st_size > 0] == []
    finally:
        subprocess.run(["umount", str(small)], check=True)


def test_a_killed_build_leaves_nothing_in_the_temporary_folder(tmp_path):
    import signal
    import time

    def compiling(pid: int) -> bool:
        """Whether a child of ``pid`` is compiling .pyc."""
        try:
            children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        except OSError:
            return False
        return any(b"py_compile" in Path(f"/proc/{child}/cmdline").read_bytes() for child in children
                   if Path(f"/proc/{child}/cmdline").exists())

    tmp = tmp_path / "tmp"
    tmp.mkdir()
    process = subprocess.Popen([sys.executable, "-m", "layerkit.cli", "build", str(ROOT / "layers" / "my_layer"),
                                "--runtime", "python3.12", "--arch", "x86_64", "--cache-dir", str(tmp_path / "cache")],
                               env={**os.environ, "TMPDIR": str(tmp)}, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while not compiling(process.pid) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert compiling(process.pid), "the build never compiled .pyc"
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    time.sleep(0.5)
    assert [p.name for p in tmp.iterdir() if p.name.startswith("layerkit")] == []
