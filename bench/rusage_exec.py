# Copyright (c) jitaccess.azure contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Run a command and record what its whole process tree cost, like ``/usr/bin/time -v``.

    python bench/rusage_exec.py OUT.json -- command args...

OUT.json gets ``rc``, ``maxrss_mb`` (the largest resident set of any process in the tree: the
command and every descendant it waited for, from getrusage(RUSAGE_CHILDREN)), and ``user_s`` /
``sys_s`` (CPU time of the whole tree). The command's stdout/stderr pass through.
"""

import json
import resource
import subprocess
import sys


def main(argv):
    out, sep, command = argv[0], argv[1], argv[2:]
    if sep != "--" or not command:
        print("usage: rusage_exec.py OUT.json -- command ...", file=sys.stderr)
        return 2
    rc = subprocess.call(command)
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    with open(out, "w", encoding="utf-8") as stream:
        json.dump({"rc": rc, "maxrss_mb": round(usage.ru_maxrss / 1024, 1), "user_s": round(usage.ru_utime, 2), "sys_s": round(usage.ru_stime, 2)}, stream)
    return rc


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
