"""webhook.metrics: the process id its shared values are filed under."""

from __future__ import annotations

import multiprocessing
import os

from webhook import metrics


def _ids_in_child() -> tuple[int, int]:
    return metrics.process_id(), os.getpid()


def test_the_cached_process_id_is_each_forked_childs_own() -> None:
    # gunicorn forks its workers with os.fork; a child filing under its parent's id would
    # overwrite the parent's values in the shared files.
    assert metrics.process_id() == os.getpid()
    with multiprocessing.get_context("fork").Pool(1) as pool:
        cached, actual = pool.apply(_ids_in_child)
    assert cached == actual
    assert cached != os.getpid()
