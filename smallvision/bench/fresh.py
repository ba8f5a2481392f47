"""One measurement in a new interpreter, so that the sides of a comparison do not inherit each
other's heap, threads or C-library settings (our loop lets malloc keep freed memory; the
seed-style peer runs with the defaults, as the seeds did)."""

from __future__ import annotations

import multiprocessing
from concurrent.futures import ProcessPoolExecutor


def in_fresh_process(function, *args):
    # A spawned child would spawn its own children too, the peer's DataLoader workers, each
    # importing torch again every epoch (4x the peer's time): it keeps this interpreter's method.
    with ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn"),
                             initializer=start_children_with, initargs=(multiprocessing.get_start_method(),)) as pool:
        return pool.submit(function, *args).result()


def start_children_with(method: str) -> None:
    multiprocessing.set_start_method(method, force=True)
