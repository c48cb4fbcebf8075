# Copyright (c) 2026 jitaccess.azure contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)

"""The one waiter: everything that waits for Azure to apply a change (allow rules after an
initiate in jit_request and jit_guard, deny rules after a policy write in jit_policy) polls here.

``sleep`` and ``clock`` are parameters so that tests drive the wait without real time.
"""

from __future__ import annotations

import time

DEFAULT_WAIT_TIMEOUT = 300
"""Seconds jit_request and jit_policy wait for Azure to apply a change, unless told otherwise."""


def backoff_delays(first=0.5, steady_rounds=3, factor=1.5, maximum=3.0):
    """Sleeps between polling rounds: 0.5 s three times (short apply delays), then growing by
    ``factor`` up to ``maximum``: 0.5, 0.5, 0.5, 0.75, 1.1, 1.7, 2.5, 3, 3...

    The cap bounds how late a poll sees an applied change (Defender takes 10-30 s): at most 3 s,
    for at most one round of reads every 3 s (up to 10 NSG GETs or resource-group lists, about
    3 reads/s: a small part of ARM's 25 reads/s refill)."""
    delay = first
    rounds = 0
    while True:
        yield delay
        rounds += 1
        if rounds >= steady_rounds:
            delay = min(maximum, delay * factor)


MIN_PAUSE_FRACTION = 0.25
"""However long a round took, the next one waits at least this part of its delay (reads on a
large fleet take seconds: rounds never run back to back)."""


def wait_until(check, timeout, *, sleep=time.sleep, clock=time.monotonic, delays=None, check_first=True):
    """Call ``check()`` until it returns true or ``timeout`` seconds have passed; return whether it
    succeeded. Rounds start ``delays`` apart (default :func:`backoff_delays`): the time a round
    took is taken off the sleep after it (down to :data:`MIN_PAUSE_FRACTION` of the delay), so a
    change is seen as soon on a large fleet as on a small one. Never sleeps past the deadline by
    more than 0.1 s. With ``check_first=False`` the first round comes after a sleep (the caller has
    just looked)."""
    deadline = clock() + max(timeout, 0)
    delays = iter(delays if delays is not None else backoff_delays())
    took = 0.0
    if check_first:
        started = clock()
        if check():
            return True
        took = clock() - started
    while True:
        remaining = deadline - clock()
        if remaining <= 0:
            return False
        delay = next(delays)
        sleep(min(max(delay - took, delay * MIN_PAUSE_FRACTION), max(remaining, 0.1)))
        started = clock()
        if check():
            return True
        took = clock() - started
