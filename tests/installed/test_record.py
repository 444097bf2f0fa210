"""RECORD read as hostile input (layerkit.installed.record): a row that names a file outside the folder stops the
build."""

from __future__ import annotations

from pathlib import Path

import pytest

from layerkit.assemble.local_build import build_function, build_layer
from layerkit.core.errors import UnsafeContentError
from tests.conftest import write
from tests.helpers import TARGET_312, assert_nothing_built, cli, one_line, quiet, wheel_with


def hostile_wheel(folder: Path) -> Path:
    """A plain wheel (nothing runs at install) that carries a second dist-info as data, whose RECORD names files of
    the machine that installs it."""
    fake = "evil-1.0.data/purelib/fake-1.0.dist-info"
    return wheel_with(folder, "evil", {
        "evil.py": b"X = 1\n",
        f"{fake}/METADATA": b"Metadata-Version: 2.1\nName: fake\nVersion: 1.0\n",
        f"{fake}/RECORD": b"/etc/passwd,,\n../../../../../../../../etc/hostname,,\n/proc/self/environ,,\n",
    })


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
            build_function(folder, TARGET_312, cache_dir=cache, report=quiet)
    assert_nothing_built(cache)
    leaked = [p for p in cache.rglob("*") if p.is_file() and b"hunter2-in-the-environment" in p.read_bytes()]
    assert leaked == []


@pytest.mark.parametrize("row", ["../../../../../../../../etc/hostname", "pkg\\..\\..\\x.py", "pkg//x.py"])
def test_every_kind_of_row_outside_the_folder_is_refused(tmp_path, row):
    layer = write(tmp_path / "layer", {"python/mod.py": "", "requirements.txt": "./wheels/sly-1.0-py3-none-any.whl\n"})
    wheel_with(layer / "wheels", "sly", {"sly.py": b"", "sly-1.0.data/purelib/odd-1.0.dist-info/RECORD":
                                         f"{row},,\n".encode()})
    with pytest.raises(UnsafeContentError, match=r"odd-1\.0\.dist-info .* has a RECORD that names"):
        build_layer(layer, TARGET_312, cache_dir=tmp_path / "cache", report=quiet, bytecode=False)


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
