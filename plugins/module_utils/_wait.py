# Copyright (c) 2026 jitaccess.azure contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Polling rhythm shared by everything that waits for Azure to apply a change (allow rules after an
initiate, deny rules after a policy write)."""

from __future__ import annotations


def backoff_delays(first=0.5, steady_rounds=3, factor=1.5, maximum=10.0):
    """Sleeps between polling rounds: 0.5 s three times (short apply delays), then growing by
    ``factor`` up to ``maximum``: 0.5, 0.5, 0.5, 0.75, 1.1, 1.7, 2.5, 3.8, 5.7, 8.5, 10, 10..."""
    delay = first
    rounds = 0
    while True:
        yield delay
        rounds += 1
        if rounds >= steady_rounds:
            delay = min(maximum, delay * factor)
