"""_files: modes as ansible.builtin.file takes them, and files replaced atomically with their mode."""

import os

import pytest

from ansible_collections.jitaccess.azure.plugins.plugin_utils._files import FileError, parse_mode, same_file, write_file


def read(path):
    with open(path, "rb") as stream:
        return stream.read()


@pytest.mark.parametrize(
    ("value", "bits"),
    [("0600", 0o600), ("600", 0o600), ("0o640", 0o640), ("2750", 0o2750), (0o644, 0o644), (384, 0o600), ("u=rw,g=r", 0o640), ("u=rw", 0o600), ("a=r", 0o444)],
)
def test_modes_octal_numeric_and_symbolic(value, bits):
    assert parse_mode(value) == bits


@pytest.mark.parametrize("value", ["0800", "rw", "u=rwz", "", True, -1, 0o10000, "99999"])
def test_a_bad_mode_is_named(value):
    with pytest.raises(FileError, match="mode must be a file mode") as caught:
        parse_mode(value)
    assert repr(value) in str(caught.value) or str(value) in str(caught.value)


def test_a_new_file_gets_its_mode_and_content_and_no_temporary_is_left(tmp_path):
    path = str(tmp_path / "report.json")
    assert write_file(path, b"{}\n", 0o640) is True
    assert read(path) == b"{}\n" and oct(os.stat(path).st_mode & 0o777) == "0o640"
    assert os.listdir(tmp_path) == ["report.json"]


def test_the_same_content_and_mode_is_left_alone_and_a_new_mode_rewrites(tmp_path):
    path = str(tmp_path / "report.md")
    write_file(path, b"# report\n", 0o600)
    before = os.stat(path).st_ino
    assert write_file(path, b"# report\n", 0o600) is False and os.stat(path).st_ino == before
    assert write_file(path, b"# report\n", 0o640) is True and oct(os.stat(path).st_mode & 0o777) == "0o640"
    assert write_file(path, b"# other\n", 0o640) is True and read(path) == b"# other\n"


def test_check_mode_tells_what_would_change_and_writes_nothing(tmp_path):
    path = str(tmp_path / "report.html")
    assert write_file(path, b"<html>", 0o600, check_mode=True) is True and not os.path.exists(path)
    write_file(path, b"<html>", 0o600)
    assert write_file(path, b"<html>", 0o600, check_mode=True) is False
    assert write_file(path, b"<p>", 0o600, check_mode=True) is True and read(path) == b"<html>"


def test_a_symbolic_link_at_the_destination_is_replaced_not_written_through(tmp_path):
    target = tmp_path / "elsewhere"
    target.write_bytes(b"precious")
    link = tmp_path / "report.json"
    os.symlink(target, link)
    assert same_file(str(link), b"precious", os.stat(target).st_mode & 0o777) is False  # a link is never "the same file"
    assert write_file(str(link), b"{}", 0o600) is True
    assert not os.path.islink(link) and link.read_bytes() == b"{}" and target.read_bytes() == b"precious"


def test_errors_name_the_path(tmp_path):
    (tmp_path / "sub").mkdir()
    with pytest.raises(FileError, match="is a directory"):
        write_file(str(tmp_path / "sub"), b"x", 0o600)
    with pytest.raises(FileError, match="directory .*missing.* does not exist"):
        write_file(str(tmp_path / "missing" / "report.json"), b"x", 0o600)


def test_an_unwritable_directory_is_named_and_a_failed_write_leaves_nothing(tmp_path, monkeypatch):
    from ansible_collections.jitaccess.azure.plugins.plugin_utils import _files

    def refused(**_kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(_files.tempfile, "mkstemp", refused)  # as root, no directory refuses a file
    with pytest.raises(FileError, match="cannot write in .*: Permission denied"):
        write_file(str(tmp_path / "report.json"), b"x", 0o600)
    monkeypatch.undo()

    def full(_temporary, _path):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(_files.os, "replace", full)
    with pytest.raises(FileError, match="cannot write .*report.json: No space left on device"):
        write_file(str(tmp_path / "report.json"), b"x", 0o600)
    assert os.listdir(tmp_path) == []  # the temporary file is removed
