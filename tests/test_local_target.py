"""LocalTarget specifics beyond the contract: modes, temp files, names the disk refuses."""

from __future__ import annotations

import os

import pytest

from copier.errors import NameNotAllowed, PermanentError
from copier.payload import BytesPayload
from targets.local import LocalTarget
from targets.names import is_temp_name, temp_name


def test_put_sets_mode_and_ns_mtime(tmp_path) -> None:
    target = LocalTarget(str(tmp_path))
    target.check()
    assert target.mtime_tolerance_ns == 0  # tmpfs / ext4 keep nanoseconds
    target.put("x/setuid", BytesPayload(b"1", 1_234_567_891, 0o104750))
    st = os.stat(tmp_path / "x" / "setuid")
    assert st.st_mode & 0o7777 == 0o4750 and st.st_mtime_ns == 1_234_567_891


def test_temp_names_are_hidden_short_and_recognised() -> None:
    name = temp_name("n" * 255)
    assert name.startswith(".") and len(name) < 80 and is_temp_name(name)
    assert not is_temp_name(".bashrc") and not is_temp_name("x.copier-0123456789ab.tmp")


def test_list_files_skips_temp_files_and_folders(tmp_path) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / temp_name("f")).write_bytes(b"partial")
    (tmp_path / "f").write_bytes(b"ok")
    assert [s.name for s in LocalTarget(str(tmp_path)).list_files("")] == ["f"]


def test_names_the_disk_refuses(tmp_path) -> None:
    target = LocalTarget(str(tmp_path))
    with pytest.raises(NameNotAllowed):
        target.put("é" * 200, BytesPayload(b"", 1))  # 400 bytes in UTF-8
    with pytest.raises(NameNotAllowed):
        target.stat("../outside")
    assert os.listdir(tmp_path) == []


def test_a_file_in_the_way_of_a_folder_is_permanent(tmp_path) -> None:
    target = LocalTarget(str(tmp_path))
    target.put("a", BytesPayload(b"1", 1))
    with pytest.raises(PermanentError):
        target.put("a/b", BytesPayload(b"2", 1))
    with pytest.raises(PermanentError):
        target.make_dir("a/c")
