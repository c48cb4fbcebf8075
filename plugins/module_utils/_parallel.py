# Copyright (c) 2026 jitaccess.azure contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Calls side by side: independent ARM writes that each take about a second on Azure."""

from __future__ import annotations

import concurrent.futures
import threading

_NOT_STARTED = object()


def side_by_side(items, work, workers, on_result=None):
    """``work(*item)`` for each item, up to ``workers`` at once.

    ``on_result(index, result)`` runs in the calling thread as each item succeeds (to record at
    once what a write did). Returns the results in item order (None where the item failed or never
    started) and ``(index, exception)`` of the first failure in item order, or None. After a
    failure no further item starts; those already running finish, so that the caller can report
    what they did. Exceptions are returned, never raised in a worker thread: the caller ends the
    module from its own thread."""
    failed = threading.Event()

    def guarded(item):
        if failed.is_set():
            return _NOT_STARTED
        try:
            return work(*item)
        except Exception:
            failed.set()
            raise

    results, failures = [None] * len(items), {}
    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, min(workers, len(items)))) as pool:
        futures = {pool.submit(guarded, item): index for index, item in enumerate(items)}
        for future in concurrent.futures.as_completed(futures):
            index = futures[future]
            if future.exception() is not None:
                failures[index] = future.exception()
            elif future.result() is not _NOT_STARTED:
                results[index] = future.result()
                if on_result is not None:
                    on_result(index, results[index])
    return results, (min(failures.items(), key=lambda pair: pair[0]) if failures else None)
