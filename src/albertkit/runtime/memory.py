"""Keep freed tensor memory inside the process, so CPU steps stop page-faulting.

glibc's malloc hands every block above its mmap threshold (128 KiB, rising only as far as the sizes it has
seen freed) straight back to the kernel when it is freed, and trims the heap above 128 KiB of free space.
A training or inference step allocates and frees the same activations every time, so each step maps them
anew and the kernel zeroes every page again: thousands of page faults per step. Raising both thresholds
lets freed blocks be reused. Measured on the tiny pretraining step: 1,000-9,000 page faults per step down
to under 400; fine-tuning and inference on SST-2 run about 15% faster (benchmarks/RESULTS.md).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import sys

logger = logging.getLogger(__name__)

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
MMAP_THRESHOLD_BYTES = 32 * 2**20  # glibc's largest allowed value on 64-bit
TRIM_THRESHOLD_BYTES = 512 * 2**20  # free memory kept at the heap's top before any is returned
# Settings a user may have chosen themselves; we leave the allocator alone when any is present.
USER_SETTINGS = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "GLIBC_TUNABLES", "LD_PRELOAD")
OPT_OUT = "ALBERTKIT_KEEP_FREED_MEMORY"

_done = False


def keep_freed_memory() -> bool:
    """Raise glibc's mmap and trim thresholds once per process; True when they were set.

    Does nothing (and returns False) off Linux, without glibc, when ALBERTKIT_KEEP_FREED_MEMORY=0, or when
    the user tunes malloc or preloads another allocator (jemalloc, tcmalloc) through the environment.
    """
    global _done
    if _done:
        return True
    if not sys.platform.startswith("linux") or os.environ.get(OPT_OUT) == "0":
        return False
    if any(os.environ.get(name) for name in USER_SETTINGS):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc (musl has no mallopt)
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    _done = mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES) == 1 and mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES) == 1
    if not _done:
        logger.debug("mallopt refused the thresholds; the allocator keeps its defaults")
    return _done
