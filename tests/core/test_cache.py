"""The kit's cache (layerkit.core.cache): entries appear whole or not at all, a damaged or foreign entry is never
shipped, a full disk or a killed build leaves nothing behind."""

from __future__ import annotations

import hashlib
import json
import os
import pwd
import shutil
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest

from layerkit.assemble.local_build import build_layer
from layerkit.core import cache
from layerkit.core.targets import Target
from tests.conftest import LAYERS, ROOT, write
from tests.helpers import MY_LAYER, TARGET_312, cli, entries, layer, layerkit_build, one_line, quiet

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="planting another user's files takes root (CI runs as root)")


@pytest.fixture
def nobody() -> int:
    return pwd.getpwnam("nobody").pw_uid


@pytest.fixture
def plain_layer(tmp_path) -> Path:
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




def damage(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


def test_concurrent_builds_of_one_layer_build_it_once(tmp_path):
    cache = tmp_path / "cache"
    procs = [layerkit_build(LAYERS / "my_layer", cache, tmp_path / f"out{i}.zip") for i in range(2)]
    results = []
    for proc in procs:
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err
        results.append(json.loads(out))
    assert sorted(r["cache"] for r in results) == ["hit", "miss"]
    assert results[0]["sha256"] == results[1]["sha256"]
    assert (tmp_path / "out0.zip").read_bytes() == (tmp_path / "out1.zip").read_bytes()
    assert not list(cache.glob("*/.tmp-*"))


#: A moment of a cold build, seen from outside: the first path that shows the build has reached it.
PHASES = {
    "starting": "builds/.tmp-*",  # the entry's scratch folder: nothing done yet
    "installing": "packages/.tmp-pack-*",  # a package being compiled and compressed
    "zipping": "builds/.tmp-*/tree/asset.zip",  # the zip being written, not yet renamed into place
}


@pytest.mark.parametrize("phase", list(PHASES))
def test_an_interrupted_build_leaves_nothing_a_later_build_trusts(tmp_path, phase):
    cache = tmp_path / "cache"
    proc = layerkit_build(LAYERS / "my_layer", cache, arch="arm64")
    deadline = time.monotonic() + 120
    while not list(cache.glob(PHASES[phase])) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.002)
    os.kill(proc.pid, signal.SIGKILL)
    proc.communicate()
    assert proc.returncode == -signal.SIGKILL, f"the build ended before it reached {phase}: nothing was interrupted"
    # An entry is complete (its marker is written last, inside the folder that is renamed into place) or it is
    # not there at all.
    for entry in [p for p in cache.glob("*/*") if p.is_dir() and not p.name.startswith(".tmp-")]:
        assert (entry / "entry.json").is_file(), f"{entry} is visible but incomplete"
    assert not [p for p in cache.glob("builds/*") if p.is_dir() and not p.name.startswith(".")], \
        "a build killed while it ran left a build entry"
    rebuilt = build_layer(LAYERS / "my_layer", Target("python3.12", "arm64"), cache_dir=cache)
    assert rebuilt.cache == "miss"
    with zipfile.ZipFile(rebuilt.zip) as archive:
        assert archive.testzip() is None
        assert "python/pydantic/__init__.py" in archive.namelist()
    fresh = build_layer(LAYERS / "my_layer", Target("python3.12", "arm64"), cache_dir=tmp_path / "fresh")
    assert rebuilt.sha256 == fresh.sha256
    assert not list(cache.glob("*/.tmp-*")), "a stale build folder was not cleaned up"


def test_an_entry_another_user_rewrote_in_a_shared_cache_is_never_shipped(plain_layer, shared, nobody, capfd):
    # Another user's build of the same layer lands where builds of the folder land, then they rewrite it.
    planted = build_layer(plain_layer, TARGET_312, cache_dir=shared / "as-nobody-first", bytecode=False)
    entry_dir = shared / "builds" / planted.zip.parent.name
    entry_dir.parent.mkdir(parents=True)
    shutil.copytree(planted.zip.parent, entry_dir)
    backdoored(entry_dir)
    chown_tree(shared / "builds", nobody)
    build = build_layer(plain_layer, TARGET_312, cache_dir=shared, bytecode=False)
    assert "python/backdoor.py" not in names_in(build)
    assert build.cache == "miss"
    assert build.zip.is_relative_to(shared / f".layerkit-user-{os.geteuid()}")


def test_a_users_own_folder_planted_by_another_user_is_ignored_with_a_warning(plain_layer, shared, nobody, capfd):
    mine = shared / f".layerkit-user-{os.geteuid()}"
    planted = build_layer(plain_layer, TARGET_312, cache_dir=mine, bytecode=False)
    backdoored(planted.zip.parent)
    chown_tree(mine, nobody)
    cache.private_root.cache_clear()
    capfd.readouterr()
    build = build_layer(plain_layer, TARGET_312, cache_dir=shared, bytecode=False)
    assert "python/backdoor.py" not in names_in(build)
    assert not build.zip.is_relative_to(shared)
    warnings = [line for line in capfd.readouterr().err.splitlines() if "is not yours" in line]
    assert len(warnings) == 1
    assert f"it belongs to user {nobody}" in warnings[0]
    assert "set LAYERKIT_CACHE_DIR to a folder of yours" in warnings[0]


def test_a_private_cache_is_used_as_it_is(plain_layer, tmp_path):
    private = tmp_path / "mine"
    cache.private_root.cache_clear()
    first = build_layer(plain_layer, TARGET_312, cache_dir=private, bytecode=False)
    second = build_layer(plain_layer, TARGET_312, cache_dir=private, bytecode=False)
    assert first.zip.is_relative_to(private / "builds")
    assert (first.cache, second.cache) == ("miss", "hit")


@pytest.mark.parametrize("how", ["flipped-byte", "truncated", "half-written"])
def test_a_damaged_package_entry_is_installed_again_never_shipped(tmp_path, how):
    cache = tmp_path / "cache"
    first = build_layer(layer(tmp_path / "first", MY_LAYER), TARGET_312, cache_dir=cache, report=quiet)
    victim = next(e for e in entries(cache) if json.loads((e / "entry.json").read_text())["name"] == "pydantic")
    members = victim / "members.zip"
    if how == "flipped-byte":
        damage(members)
    elif how == "truncated":
        members.write_bytes(members.read_bytes()[:1000])
    else:  # an entry folder without its completion marker, as a copy interrupted half-way would leave it
        (victim / "entry.json").unlink()
    second = build_layer(layer(tmp_path / "second", MY_LAYER, module="other"), TARGET_312,
                         cache_dir=cache, report=quiet)
    assert second.package_cache == {"reused": 4, "compiled": 0, "installed": 1}
    cold = build_layer(layer(tmp_path / "cold", MY_LAYER, module="other"), TARGET_312,
                       cache_dir=tmp_path / "cold-cache", report=quiet)
    assert second.sha256 == cold.sha256
    assert first.sha256 != second.sha256  # another module: another layer, the same packages


def test_a_damaged_build_is_built_again_never_returned(tmp_path):
    cache = tmp_path / "cache"
    source = layer(tmp_path / "damaged", MY_LAYER)
    built = build_layer(source, TARGET_312, cache_dir=cache, report=quiet)
    damage(built.zip)
    reports: list[str] = []
    again = build_layer(source, TARGET_312, cache_dir=cache, report=reports.append)
    assert (again.cache, again.sha256) == ("miss", built.sha256)
    assert any("its cached build" in line and "is damaged; building it again" in line for line in reports)
    with zipfile.ZipFile(again.zip) as archive:
        assert archive.testzip() is None


# -- 9. cache faults are mended, never a traceback -------------------------------------------------------------
def test_an_entry_missing_its_fields_is_rebuilt_not_a_traceback(tmp_path):
    layer = write(tmp_path / "layer", {"python/mod.py": "X = 1\n", "requirements.txt": "six==1.17.0\n"})
    cache = tmp_path / "cache"
    first = build_layer(layer, TARGET_312, cache_dir=cache, report=quiet)
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
