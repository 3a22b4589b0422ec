"""Single-threaded BLAS for the small dense problems of this package.

The fits here work on matrices of tens to hundreds of conditions, where OpenBLAS threads only add
synchronisation cost; on a busy 2-core machine a multi-threaded BLAS made one Thurstone fit 30x slower
(1.1 s instead of 0.04 s). Every public entry point runs under :func:`single_thread`.
"""

from __future__ import annotations

import functools

try:
    from threadpoolctl import threadpool_limits
except ImportError:  # pragma: no cover - threadpoolctl is a declared dependency
    threadpool_limits = None

_depth = 0


def single_thread(fn):
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        global _depth
        if threadpool_limits is None or _depth:
            return fn(*args, **kwargs)
        _depth += 1
        try:
            with threadpool_limits(limits=1, user_api="blas"):
                return fn(*args, **kwargs)
        finally:
            _depth -= 1

    return wrapper
