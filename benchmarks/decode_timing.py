"""Time spent in a generator's ``decode`` during a run, for benchmarks that split the time per
sample into sampling (the network) and decoding (meshing, crystal placement, ...)."""

from __future__ import annotations

import contextlib
import time


@contextlib.contextmanager
def timed_decode(generator):
    """While the block runs, ``generator.decode`` is timed; yields a dict whose ``seconds``
    is the total so far. The generator's own ``decode`` is back afterwards."""
    original = generator.decode
    spent = {"seconds": 0.0}

    def timed(x, conditions):
        start = time.perf_counter()
        try:
            return original(x, conditions)
        finally:
            spent["seconds"] += time.perf_counter() - start

    generator.decode = timed
    try:
        yield spent
    finally:
        del generator.decode  # the instance attribute: the class's method shows again
