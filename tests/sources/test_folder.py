"""A source folder (layerkit.sources.folder): its one declaration, what decides its asset hash, and mistakes in it told
with the fix."""

from __future__ import annotations

import os
import zipfile

import pytest

from layerkit.assemble.local_build import build_layer
from layerkit.core.errors import DeclarationError, LayerkitError, LayerSourceError
from layerkit.core.targets import Target
from layerkit.sources import SourceFolder
from tests.conftest import LAYERS, extract, make_wheel, run_isolated
from tests.helpers import (
    LOCKED,
    assert_nothing_built,
    copy_layer,
    copy_project,
    install_by_hand,
    layer_folder,
    one_line_cli_error,
    quiet,
)
from tests.lock_projects import LOCKED_ORJSON, NEWER_ORJSON

# -- the manual step's leftovers: packages installed into python/ -----------------------------------------


# -- declarations the kit cannot honour -------------------------------------------------------------------
BAD = {
    "editable": ({"requirements.txt": "six==1.17.0\n-e ../lib\n"},
                 "requirements.txt:2: an editable install (-e ../lib) cannot ship in a Lambda package"),
    "vcs": ({"requirements.txt": "git+https://example.com/repo.git#egg=repo\n"},
            "requirements.txt:1: git+https://example.com/repo.git#egg=repo is a version-control requirement"),
    "unknown-option": ({"requirements.txt": "--frobnicate yes\n"}, "requirements.txt:1: unknown option '--frobnicate'"),
    "missing-include": ({"requirements.txt": "-r missing.txt\n"}, "missing.txt does not exist; fix the -r/-c path"),
    "url-without-name": ({"requirements.txt": "https://example.com/pkg-1.0-py3-none-any.whl\n"},
                         "is a URL without a name; write it as 'name @ https://example.com/pkg-1.0-py3-none-any.whl'"),
    "broken-poetry-lock": ({"pyproject.toml": '[project]\nname = "x"\nversion = "0"\ndependencies = ["six"]\n',
                            "poetry.lock": "[[package]\nname = \n"}, "poetry.lock: not valid TOML"),
    "broken-pipfile-lock": ({"Pipfile": "[packages]\nsix = '*'\n", "Pipfile.lock": "{not json"},
                            "Pipfile.lock: not valid JSON"),
    "pipfile-without-lock": ({"Pipfile": "[packages]\nsix = '*'\n"},
                             "Pipfile: declares dependencies but has no Pipfile.lock beside it; run 'pipenv lock'"),
    "poetry-without-lock": ({"pyproject.toml": '[tool.poetry]\nname = "x"\n\n[tool.poetry.dependencies]\n'
                                               'python = "^3.12"\nsix = "^1.17"\n'},
                            "no poetry.lock beside it; run 'poetry lock' in that folder"),
    "uv-lock-without-project": ({"uv.lock": "version = 1\n"}, "uv.lock: has no pyproject.toml beside it"),
    "poetry-1-lock": ({"pyproject.toml": '[project]\nname = "x"\nversion = "0"\ndependencies = ["six"]\n',
                       "poetry.lock": '[metadata]\nlock-version = "2.0"\ncontent-hash = "0"\n'},
                      "poetry.lock: lock-version 2.0 does not record which group each package belongs to"),
    # A declaration where the kit does not read one, or under a near-miss name: never silently nothing installed.
    "in-python": ({"python/requirements.txt": "six==1.17.0\n"},
                  "python/requirements.txt is inside python/, where the kit never reads a dependency file and where "
                  "it would ship to /opt/python/; move it to"),
    "misspelt": ({"requirement.txt": "six==1.17.0\n"},
                 "requirement.txt: the kit reads dependencies from requirements.txt, not requirement.txt, so nothing "
                 "would be installed; rename it to requirements.txt"),
    "capitalised": ({"Requirements.txt": "six==1.17.0\n"}, "rename it to requirements.txt"),
    "misspelt-lock": ({"pyproject.toml": '[project]\nname = "x"\nversion = "0"\n', "poetry.lok": "x"},
                      "rename it to poetry.lock"),
}


def test_one_changed_byte_changes_the_zip_and_the_asset_hash(tmp_path):
    layer = copy_layer("another_layer", tmp_path)
    target = Target("python3.12", "x86_64")
    before = build_layer(layer, target, cache_dir=tmp_path / "cache")
    module = layer / "python" / "another_layer" / "module2.py"
    module.write_bytes(module.read_bytes().replace(b"top: int = 3", b"top: int = 4"))
    after = build_layer(layer, target, cache_dir=tmp_path / "cache")
    assert after.cache == "miss"
    assert after.sha256 != before.sha256
    assert after.asset_hash != before.asset_hash


def test_asset_hash_depends_on_target_but_not_on_where_the_layer_sits(tmp_path):
    x86 = build_layer(LAYERS / "another_layer", Target("python3.12", "x86_64"), cache_dir=tmp_path)
    arm = build_layer(LAYERS / "another_layer", Target("python3.12", "arm64"), cache_dir=tmp_path)
    moved = build_layer(copy_layer("another_layer", tmp_path), Target("python3.12", "x86_64"), cache_dir=tmp_path)
    assert x86.asset_hash != arm.asset_hash
    assert moved.asset_hash == x86.asset_hash
    assert moved.cache == "hit"


def test_a_layer_in_a_folder_with_spaces_and_non_ascii_letters_builds_and_imports(tmp_path, python312):
    layer = tmp_path / "mes couches" / "çà_layer été"
    (layer / "python" / "paquet").mkdir(parents=True)
    (layer / "python" / "paquet" / "__init__.py").write_text("NOM = 'é'\n")
    (layer / "python" / "paquet" / "données.txt").write_text("ok\n")
    build = build_layer(layer, Target("python3.12", "x86_64"), cache_dir=tmp_path / "caché dir",
                        report=lambda _: None)
    with zipfile.ZipFile(build.zip) as archive:
        names = archive.namelist()
        assert "python/paquet/données.txt" in names
        pyc = archive.read("python/paquet/__pycache__/__init__.cpython-312.pyc")
    root = extract(build.zip, tmp_path / "extracted")
    code, out, err = run_isolated(python312, "import marshal, paquet\nprint(paquet.NOM)\n"
                                             f"print(marshal.loads({pyc!r}[16:]).co_filename)", root / "python")
    assert code == 0, err
    assert out.split() == ["é", "/opt/python/paquet/__init__.py"]


def test_every_file_that_decides_the_layer_is_in_its_asset_hash(locked, tmp_path):
    layer = layer_folder(tmp_path / "inputs", {
        "requirements.txt": "-r base.txt\n-c pins.txt\n./wheels/kit_local-1.0-py3-none-any.whl\n",
        "base.txt": f"--index-url {locked.index.url()}\norjson<3.11\n",
        "pins.txt": f"orjson=={LOCKED_ORJSON}\n",
    })
    make_wheel(layer / "wheels", "kit-local", {"kit_local.py": "X = 1\n"})
    target, cache = Target("python3.12", "x86_64"), tmp_path / "cache"
    first = build_layer(layer, target, cache_dir=cache, report=quiet, bytecode=False)
    for path in layer.rglob("*"):  # touching files changes nothing
        os.utime(path, (1, 1))
    assert build_layer(layer, target, cache_dir=cache, report=quiet, bytecode=False).cache == "hit"
    hashes = {first.asset_hash}
    for name, edit in [("base.txt", b"orjson<3.11  # edited\n"), ("pins.txt", b"orjson==3.10.16\n\n"),
                       ("wheels/kit_local-1.0-py3-none-any.whl", None)]:
        if edit is None:
            make_wheel(layer / "wheels", "kit-local", {"kit_local.py": "X = 2\n"})
        else:
            (layer / name).write_bytes((layer / name).read_bytes().split(b"\n")[0] + b"\n" + edit)
        hashes.add(build_layer(layer, target, cache_dir=cache, report=quiet, bytecode=False).asset_hash)
    assert len(hashes) == 4


@pytest.mark.parametrize("tool", ["uv", "poetry", "pipenv"])
def test_a_lock_file_is_in_the_asset_hash(locked, tool, tmp_path):
    project = copy_project(getattr(locked, tool), tmp_path)
    before = SourceFolder.layer(project).fingerprint(Target("python3.12", "x86_64"), bytecode=True)
    lock = next(p for p in project.iterdir() if p.name in ("uv.lock", "poetry.lock", "Pipfile.lock"))
    lock.write_text(lock.read_text() + "\n")
    assert SourceFolder.layer(project).fingerprint(Target("python3.12", "x86_64"), bytecode=True) != before


def test_a_package_installed_by_hand_and_also_required_names_the_installed_copy(locked, tmp_path):
    layer = layer_folder(tmp_path / "manual", {"requirements.txt": f"--index-url {locked.index.url()}\n"
                                                                   "six==1.17.0\n"})
    install_by_hand(layer, "six==1.17.0", locked.index.url(), "3.12", "x86_64-manylinux_2_34")
    with pytest.raises(LayerSourceError) as error:
        build_layer(layer, Target("python3.12", "x86_64"), cache_dir=tmp_path / "cache", report=quiet)
    assert str(error.value) == (
        "layer manual: six 1.17.0 is installed into python/ by hand (six-1.17.0.dist-info) and requirements.txt "
        "installs it too; delete the installed copy (its package and six-1.17.0.dist-info): the kit installs six "
        "for python3.12/x86_64"
    )


def test_a_pure_package_installed_by_hand_builds_with_a_warning_that_says_what_to_do(locked, tmp_path):
    layer = layer_folder(tmp_path / "manual", {})
    install_by_hand(layer, "six==1.17.0", locked.index.url(), "3.12", "x86_64-manylinux_2_34")
    build = build_layer(layer, Target("python3.12", "x86_64"), cache_dir=tmp_path / "cache", report=quiet)
    assert build.warnings == [
        "layer manual: python/ holds installed distributions (six 1.17.0), left by a manual 'pip install -t'; delete "
        "them (their packages and .dist-info folders) and list them in requirements.txt, which the kit installs "
        "for the target"
    ]


@pytest.mark.parametrize("case", BAD)
def test_a_declaration_the_kit_cannot_honour_is_one_line_with_the_fix(case, tmp_path):
    files, expected = BAD[case]
    layer = layer_folder(tmp_path / "bad", {"python/m.py": "", **files})
    with pytest.raises(LayerkitError) as error:
        build_layer(layer, Target("python3.12", "x86_64"), cache_dir=tmp_path / "cache", report=quiet)
    assert expected in str(error.value)
    assert expected in one_line_cli_error(layer, tmp_path / "cache")
    assert_nothing_built(tmp_path / "cache")


def test_a_function_whose_declaration_is_misspelt_stops_naming_the_file(tmp_path):
    from layerkit.assemble.local_build import build_function

    folder = layer_folder(tmp_path / "fn", {"index.py": "import six\n", "requirments.txt": "six==1.17.0\n"})
    with pytest.raises(DeclarationError, match=r"rename it to requirements\.txt"):
        build_function(folder, Target("python3.12", "x86_64"), cache_dir=tmp_path / "cache", report=quiet)


def test_a_suffixed_requirements_file_alone_is_a_warning_not_a_stop(tmp_path):
    layer = layer_folder(tmp_path / "dev", {"python/m.py": "", "requirements-dev.txt": "pytest==9.2.0\n"})
    build = build_layer(layer, Target("python3.12", "x86_64"), cache_dir=tmp_path / "cache", report=quiet)
    assert build.packages == []
    assert build.warnings == [
        "layer dev: requirements-dev.txt is not read (the kit reads requirements.txt, or a lock): nothing of it is "
        "installed; if its packages must ship, put them in requirements.txt"]


def test_two_declarations_that_disagree_are_refused(locked, tmp_path):
    project = copy_project(locked.uv, tmp_path)
    (project / "requirements.txt").write_text(f"orjson=={NEWER_ORJSON}\n")  # stale beside the uv.lock
    with pytest.raises(LayerSourceError) as error:
        build_layer(project, Target("python3.12", "x86_64"), cache_dir=tmp_path / "cache", report=quiet)
    assert str(error.value) == (
        f"layer uv_layer: requirements.txt and uv.lock disagree: requirements.txt:1 asks for orjson=={NEWER_ORJSON}, "
        f"uv.lock installs orjson {LOCKED_ORJSON}; keep one declaration, or refresh the other from it"
    )
    (project / "requirements.txt").write_text(f"orjson=={LOCKED_ORJSON}\npython-dateutil\n")  # agrees
    build = build_layer(project, Target("python3.12", "x86_64"), cache_dir=tmp_path / "cache", report=quiet)
    assert build.packages == LOCKED
