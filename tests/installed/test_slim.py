"""Slimming (layerkit.installed.slim): debug symbols stripped, tests and whole distributions left out, as asked."""

from __future__ import annotations

import shutil
import subprocess

from layerkit.assemble.local_build import build_layer
from layerkit.installed.slim import Slim
from tests.conftest import write
from tests.helpers import TARGET_312, names, quiet


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
    build = build_layer(layer, TARGET_312, cache_dir=tmp_path / "cache", report=reports.append, bytecode=False,
                        slim=Slim(without=("boto3", "botocore", "Six")))
    shipped = {n.split("/")[1] for n in names(build.zip)}
    assert not {"boto3", "botocore", "six.py"} & shipped
    assert {"s3transfer", "jmespath"} <= shipped
    assert sorted(pin.split("==")[0] for pin in build.left_out) == ["boto3", "botocore", "six"]
    assert any("left out: on Lambda the python3.12 runtime's own copy applies" in r for r in reports), reports
    plain = build_layer(layer, TARGET_312, cache_dir=tmp_path / "cache", report=quiet, bytecode=False)
    assert plain.asset_hash != build.asset_hash
