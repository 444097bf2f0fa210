"""A cache entry is used only when no other user could have written it: a cache folder shared between users (mode
1777, as a CI machine's shared cache) never has one user ship what another planted."""

from __future__ import annotations

import json
import os
import pwd
import shutil
import zipfile
from pathlib import Path

import pytest

from layerkit.assemble.local_build import build_layer
from layerkit.core import cache
from layerkit.core.targets import Target

PY312 = Target("python3.12", "x86_64")

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="planting another user's files takes root (CI runs as root)")


@pytest.fixture
def nobody() -> int:
    return pwd.getpwnam("nobody").pw_uid


@pytest.fixture
def layer(tmp_path) -> Path:
    folder = tmp_path / "layer"
    (folder / "python").mkdir(parents=True)
    (folder / "python" / "mod.py").write_text("VALUE = 1\n")
    return folder


def backdoored(entry: Path) -> None:
    """What another user does to an entry they can write: a module added, its record made to match."""
    zipped = entry / "asset.zip"
    with zipfile.ZipFile(zipped, "a") as archive:
        archive.writestr("python/backdoor.py", "import os; os.system('id')\n")
    meta = json.loads((entry / "entry.json").read_text())
    import hashlib

    meta["sha256"] = hashlib.sha256(zipped.read_bytes()).hexdigest()
    meta["zipped_bytes"] = zipped.stat().st_size
    (entry / "entry.json").write_text(json.dumps(meta))


def chown_tree(path: Path, uid: int) -> None:
    for folder, dirnames, filenames in os.walk(path):
        os.chown(folder, uid, uid)
        for name in [*dirnames, *filenames]:
            os.lchown(os.path.join(folder, name), uid, uid)


def names_in(build) -> list[str]:
    with zipfile.ZipFile(build.zip) as archive:
        return sorted(archive.namelist())


@pytest.fixture
def shared(tmp_path) -> Path:
    """A cache folder every user may write, as one shared between CI jobs on one machine."""
    folder = tmp_path / "shared-cache"
    folder.mkdir()
    folder.chmod(0o1777)
    cache.private_root.cache_clear()
    yield folder
    cache.private_root.cache_clear()


def test_an_entry_another_user_rewrote_in_a_shared_cache_is_never_shipped(layer, shared, nobody, capfd):
    # Another user's build of the same layer lands where builds of the folder land, then they rewrite it.
    planted = build_layer(layer, PY312, cache_dir=shared / "as-nobody-first", bytecode=False)
    entry_dir = shared / "builds" / planted.zip.parent.name
    entry_dir.parent.mkdir(parents=True)
    shutil.copytree(planted.zip.parent, entry_dir)
    backdoored(entry_dir)
    chown_tree(shared / "builds", nobody)
    build = build_layer(layer, PY312, cache_dir=shared, bytecode=False)
    assert "python/backdoor.py" not in names_in(build)
    assert build.cache == "miss"
    assert build.zip.is_relative_to(shared / f".layerkit-user-{os.geteuid()}")


def test_a_users_own_folder_planted_by_another_user_is_ignored_with_a_warning(layer, shared, nobody, capfd):
    mine = shared / f".layerkit-user-{os.geteuid()}"
    planted = build_layer(layer, PY312, cache_dir=mine, bytecode=False)
    backdoored(planted.zip.parent)
    chown_tree(mine, nobody)
    cache.private_root.cache_clear()
    capfd.readouterr()
    build = build_layer(layer, PY312, cache_dir=shared, bytecode=False)
    assert "python/backdoor.py" not in names_in(build)
    assert not build.zip.is_relative_to(shared)
    warnings = [line for line in capfd.readouterr().err.splitlines() if "is not yours" in line]
    assert len(warnings) == 1
    assert f"it belongs to user {nobody}" in warnings[0]
    assert "set LAYERKIT_CACHE_DIR to a folder of yours" in warnings[0]


def test_a_private_cache_is_used_as_it_is(layer, tmp_path):
    private = tmp_path / "mine"
    cache.private_root.cache_clear()
    first = build_layer(layer, PY312, cache_dir=private, bytecode=False)
    second = build_layer(layer, PY312, cache_dir=private, bytecode=False)
    assert first.zip.is_relative_to(private / "builds")
    assert (first.cache, second.cache) == ("miss", "hit")
