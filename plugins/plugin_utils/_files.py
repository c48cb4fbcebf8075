# Copyright (c) 2026 jitaccess.azure contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Files written on the controller by an action plugin, without running a module.

A module run costs the role about half a second (AnsiballZ, a Python start); ``ansible.builtin.copy``
runs two per file (``stat``, then ``copy``). The report files are written here instead, with what
``copy`` guarantees: an atomic replacement (never a half-written file), the mode set before the
content is visible, a symbolic link at the destination replaced, never written through.
"""

from __future__ import annotations

import contextlib
import os
import re
import stat
import tempfile

from ansible.module_utils.basic import AnsibleModule

OCTAL_MODE = re.compile(r"^(?:0o?)?([0-7]{3,4})$")


class FileError(Exception):
    """A file cannot be written as asked; the message names the path or value and why."""


def parse_mode(value, name="mode"):
    """The permission bits of ``value``: an octal string (``"0600"``, ``"600"``, ``"0o600"``), a
    number (``0o600`` as YAML reads ``0600``), or a symbolic mode (``"u=rw,g=r"``, applied to no
    permissions at all)."""
    if isinstance(value, bool):
        raise FileError("%s must be a file mode such as '0600' or 'u=rw,g=r', got %r" % (name, value))
    if isinstance(value, int):
        if 0 <= value <= 0o7777:
            return value
        raise FileError("%s must be a file mode between 0000 and 07777, got %r" % (name, value))
    text = str(value).strip()
    if not text:
        raise FileError("%s must be a file mode such as '0600' or 'u=rw,g=r', got %r" % (name, value))
    match = OCTAL_MODE.match(text)
    if match:
        return int(match.group(1), 8)
    try:  # the same symbolic syntax as ansible.builtin.file and copy
        return AnsibleModule._symbolic_mode_to_octal(os.stat_result((0,) * 10), text)  # noqa: SLF001
    except Exception as exc:  # noqa: BLE001 - any parse failure is the user's value
        raise FileError("%s must be a file mode such as '0600' or 'u=rw,g=r', got %r (%s)" % (name, value, exc)) from None


def same_file(path, content, mode):
    """Whether ``path`` is a regular file (not a link) holding ``content`` with mode ``mode``."""
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return False
    if not stat.S_ISREG(info.st_mode) or stat.S_IMODE(info.st_mode) != mode or info.st_size != len(content):
        return False
    with open(path, "rb") as stream:
        return stream.read() == content


def write_file(path, content, mode, check_mode=False):
    """Write ``content`` (bytes) to ``path`` with ``mode``; return whether anything changed (in check
    mode: would change). The file is written beside ``path`` under a private name, given its mode,
    then renamed over ``path``: readers see the old file or the new one, never a part."""
    directory = os.path.dirname(path) or "."
    if os.path.isdir(path) and not os.path.islink(path):
        raise FileError("%s is a directory" % path)
    if not os.path.isdir(directory):
        raise FileError("directory %s does not exist" % directory)
    if same_file(path, content, mode):
        return False
    if check_mode:
        return True
    try:
        fd, temporary = tempfile.mkstemp(dir=directory, prefix=".%s." % os.path.basename(path), suffix=".tmp")  # 0600
    except OSError as exc:
        raise FileError("cannot write in %s: %s" % (directory, exc.strerror or exc)) from None
    try:
        with os.fdopen(fd, "wb") as stream:
            stream.write(content)
            stream.flush()
            os.fsync(stream.fileno())
            os.fchmod(stream.fileno(), mode)
        os.replace(temporary, path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise FileError("cannot write %s: %s" % (path, exc.strerror or exc)) from None
    return True
