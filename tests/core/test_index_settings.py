"""Where packages come from (layerkit.core.index_settings): one reading of the index settings for both builders,
credentials that never decide an asset, no settings file of the app or the user read."""

from __future__ import annotations

import zipfile

import pytest
from aws_cdk import App, Stack
from aws_cdk import aws_lambda as lambda_

from layerkit import SharedPythonLayer
from layerkit.assemble.local_build import build_layer
from layerkit.core.errors import BuildError
from layerkit.core.targets import Target
from layerkit.docker.staging import stage
from layerkit.sources import SourceFolder
from tests.conftest import make_wheel
from tests.helpers import layer_folder, quiet
from tests.package_index import PackageIndex

# -- private indexes ------------------------------------------------------------------------------------


def test_a_build_never_reads_the_uv_settings_of_the_app_the_user_or_the_shell(tmp_path, monkeypatch):
    """An app whose repository pins another uv and a dead index in its pyproject.toml, a user uv.toml that points at
    another dead index, and a shell that caps versions at the year 2000: a cold build installs as anywhere else."""
    app = tmp_path / "app"
    (app / "layers" / "deps" / "python").mkdir(parents=True)
    (app / "pyproject.toml").write_text('[tool.uv]\nrequired-version = "==0.11.*"\n'
                                        'index-url = "http://127.0.0.1:9/simple"\n')
    (app / "layers" / "deps" / "requirements.txt").write_text("six==1.17.0\n")
    (tmp_path / "config" / "uv").mkdir(parents=True)
    (tmp_path / "config" / "uv" / "uv.toml").write_text('index-url = "http://127.0.0.1:9/simple"\n')
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.setenv("UV_EXCLUDE_NEWER", "2000-01-01T00:00:00Z")
    monkeypatch.chdir(app)
    build = build_layer("layers/deps", Target("python3.12", "x86_64"), cache_dir=tmp_path / "cache",
                        report=lambda _: None)
    assert build.packages == ["six==1.17.0"]


@pytest.mark.parametrize("setting", ["PIP_INDEX_URL", "UV_INDEX_URL", "PIP_EXTRA_INDEX_URL", "UV_EXTRA_INDEX_URL"])
def test_a_rotated_index_token_keeps_the_asset_hash_and_the_cache_entry(private_index, tmp_path, monkeypatch,
                                                                        setting):
    layer = layer_folder(tmp_path / "private", {"requirements.txt": "kit-private==1.0\n",
                                                "python/uses.py": "import kit_private\n"})
    target, cache = Target("python3.12", "x86_64"), tmp_path / "cache"
    monkeypatch.setenv(setting, private_index.url(("ci", "token-one")))
    first = build_layer(layer, target, cache_dir=cache, report=quiet)
    assert first.packages == ["kit-private==1.0"]
    private_index.credentials = ("ci", "token-two")  # CodeArtifact-style rotation
    monkeypatch.setenv(setting, private_index.url(("ci", "token-two")))
    second = build_layer(layer, target, cache_dir=cache, report=quiet)
    assert (second.cache, second.asset_hash, second.sha256) == ("hit", first.asset_hash, first.sha256)
    assert build_layer(layer, target, cache_dir=tmp_path / "fresh", report=quiet).sha256 == first.sha256
    for path in [p for p in [*cache.rglob("*"), *(tmp_path / "fresh").rglob("*")] if p.is_file()]:
        assert b"token-" not in path.read_bytes(), path


def test_netrc_credentials_reach_an_index_named_in_the_file(private_index, tmp_path, monkeypatch):
    layer = layer_folder(tmp_path / "private", {"requirements.txt": f"--index-url {private_index.url()}\n"
                                                                    "kit-private==1.0\n"})
    (tmp_path / "netrc").write_text("machine 127.0.0.1\nlogin ci\npassword token-one\n")
    monkeypatch.setenv("NETRC", str(tmp_path / "netrc"))
    build = build_layer(layer, Target("python3.12", "x86_64"), cache_dir=tmp_path / "cache", report=quiet)
    assert build.packages == ["kit-private==1.0"]


def test_the_docker_builder_gets_the_index_from_the_environment_never_in_a_file(private_index, tmp_path,
                                                                                 monkeypatch):
    from layerkit.docker.staging import bundling_environment

    layer = layer_folder(tmp_path / "private", {"requirements.txt": "--extra-index-url ${CORP_INDEX}\n"
                                                                    "kit-private==1.0\n"})
    monkeypatch.setenv("CORP_INDEX", private_index.url(("ci", "token-one")))
    monkeypatch.setenv("UV_INDEX_URL", "https://mirror.example/simple")
    source = SourceFolder.layer(layer)
    # Named as pip names it and as uv does: the image installs with either.
    assert bundling_environment(source) == {"CORP_INDEX": private_index.url(("ci", "token-one")),
                                            "PIP_INDEX_URL": "https://mirror.example/simple",
                                            "UV_INDEX_URL": "https://mirror.example/simple"}
    staged = stage(source, source.fingerprint(Target("python3.12", "x86_64"), bytecode=True), tmp_path / "cache")
    assert (staged / "_layerkit" / "requirements.txt").read_text() == (
        "--extra-index-url ${CORP_INDEX}\nkit-private==1.0\n")


@pytest.fixture
def two_indexes(tmp_path):
    """Two local indexes that serve the same release of kit-origin with different content, and a release of
    kit-oldpy that Lambda's Pythons refuse beside an older one each index offers differently."""
    found = {}
    for name in ("pip", "uv"):
        wheels = tmp_path / f"{name}-wheels"
        make_wheel(wheels, "kit-origin", {"kit_origin.py": f"WHERE = {name + '-index'!r}\n"})
        make_wheel(wheels, "kit-oldpy", {"kit_oldpy.py": ""}, version="2.0", requires_python="<3.7")
        make_wheel(wheels, "kit-oldpy", {"kit_oldpy.py": ""}, version="0.5" if name == "uv" else "0.7")
        found[name] = PackageIndex(wheels)
    yield found
    for index in found.values():
        index.close()


def test_with_pip_and_uv_settings_naming_two_indexes_every_reader_takes_uvs(two_indexes, tmp_path, monkeypatch):
    """PIP_INDEX_URL and UV_INDEX_URL name two indexes: the local build, the Docker build's container, the engine
    probe and the Requires-Python lookup all take uv's (docs/dependencies.md), so one asset hash is one install."""
    from layerkit.docker import engine
    from layerkit.docker.staging import bundling_environment

    monkeypatch.setenv("PIP_INDEX_URL", two_indexes["pip"].url())
    monkeypatch.setenv("UV_INDEX_URL", two_indexes["uv"].url())
    layer = layer_folder(tmp_path / "origin", {"requirements.txt": "kit-origin==1.0\n"})
    build = build_layer(layer, Target("python3.12", "x86_64"), cache_dir=tmp_path / "cache", report=quiet)
    with zipfile.ZipFile(build.zip) as archive:
        assert archive.read("python/kit_origin.py") == b"WHERE = 'uv-index'\n"
    # The container is handed uv's index under both names (its pip reads one, its uv the other).
    given = bundling_environment(SourceFolder.layer(layer))
    assert given["PIP_INDEX_URL"] == given["UV_INDEX_URL"] == two_indexes["uv"].url()
    assert engine.index_url() == two_indexes["uv"].url()
    # The release named in the Requires-Python fix is the one uv's index offers.
    old = layer_folder(tmp_path / "oldpy", {"requirements.txt": "kit-oldpy==2.0\n"})
    with pytest.raises(BuildError, match=r"pin kit-oldpy==0\.5, the newest release that supports it"):
        build_layer(old, Target("python3.12", "x86_64"), cache_dir=tmp_path / "cache", report=quiet)


def test_the_docker_builder_installs_from_the_index_the_local_build_does(two_indexes, lambda_images, tmp_path,
                                                                           monkeypatch):
    monkeypatch.setenv("PIP_INDEX_URL", two_indexes["pip"].url())
    monkeypatch.setenv("UV_INDEX_URL", two_indexes["uv"].url())
    layer = layer_folder(tmp_path / "origin", {"requirements.txt": "kit-origin==1.0\n"})
    app = App(outdir=str(tmp_path / "cdk.out"), context={"layerkit:builder": "docker",
                                                          "layerkit:docker-network": "host"})
    bundled = SharedPythonLayer(Stack(app, "S"), "Origin", entry=layer, runtime=lambda_.Runtime.PYTHON_3_13)
    app.synth()
    assert bundled.builder.value == "docker"
    assert (bundled.code.content / "python" / "kit_origin.py").read_text() == "WHERE = 'uv-index'\n"
    local = build_layer(layer, Target("python3.13", "x86_64"), cache_dir=tmp_path / "cache", report=quiet)
    assert bundled.asset_hash == local.asset_hash
