"""Atomic output: whole files or none, ordinary permissions, nothing left behind on failure."""

import os
import stat

import pytest

from relulab.core.errors import InvalidInputError
from relulab.core.files import atomic_save, atomic_write, check_output_path


def test_atomic_write_replaces_whole_file_with_umask_permissions(tmp_path):
    target = tmp_path / "out.txt"
    target.write_text("old")
    with atomic_write(target, "w") as f:
        f.write("new")
    assert target.read_text() == "new"
    mask = os.umask(0o022)
    os.umask(mask)
    assert stat.S_IMODE(target.stat().st_mode) == 0o666 & ~mask
    assert [p.name for p in tmp_path.iterdir()] == ["out.txt"]


def test_failed_write_keeps_the_old_file_and_no_temporary(tmp_path):
    target = tmp_path / "out.bin"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError):
        with atomic_write(target) as f:
            f.write(b"partial")
            raise RuntimeError("killed")
    assert target.read_bytes() == b"old"
    with pytest.raises(OSError):
        atomic_save(target, lambda tmp: (open(tmp, "wb").write(b"half"), (_ for _ in ()).throw(OSError("disk"))))
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.bin"]


def test_check_output_path(tmp_path):
    assert check_output_path(tmp_path / "fig", suffix=".png").name == "fig.png"
    assert check_output_path(tmp_path / "fig.PNG", suffix=".png").name == "fig.PNG"
    for bad in ("", "   ", None):
        with pytest.raises(InvalidInputError, match="non-empty"):
            check_output_path(bad)
    with pytest.raises(InvalidInputError, match="does not exist"):
        check_output_path(tmp_path / "missing" / "x.json")
    with pytest.raises(InvalidInputError, match="folder"):
        check_output_path(tmp_path)
