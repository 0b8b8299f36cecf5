"""Batches that shrink for good when the GPU runs out of memory, so a render goes on instead of failing."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch


class ShrinkingBatch:
    """A batch size, halved for good (down to 1) each time a slice runs the GPU out of memory.

    ``name`` says whose batch it is in the warning ("the restorer", "the generator").
    """

    def __init__(self, size: int, name: str) -> None:
        if size < 1:
            raise ValueError(f"a batch holds at least one item, not {size}")
        self.size = size
        self.name = name

    def map(self, count: int, run: Callable[[int, int], np.ndarray], warn: Callable[[str], None]) -> np.ndarray:
        """Concatenate ``run(start, stop)`` over ``range(count)`` in slices of the current size.

        After an out-of-memory error the size is halved and the same slice tried again (the
        items before it are kept); at size 1 the error is raised.
        """
        results: list[np.ndarray] = []
        start = 0
        while start < count:
            size = self.size
            try:
                results.append(run(start, min(count, start + size)))
            except torch.cuda.OutOfMemoryError:
                if size == 1:
                    raise
                torch.cuda.empty_cache()
                self.size = size // 2
                warn(f"the GPU ran out of memory at {self.name} batch {size}: continuing with {self.size}")
                continue
            start += size
        return np.concatenate(results)
