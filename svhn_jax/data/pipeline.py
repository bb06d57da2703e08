"""Deterministic input pipeline over splits held in memory as uint8.

The global batch at step t is a pure function of (data seed, t): epoch e = t // steps_per_epoch
uses the permutation drawn from (seed, e), and batch t takes the next `global_batch` indices of it
(a partial batch at the end of an epoch is skipped). So a resumed or repeated run reads exactly
the same batches. Each process reads only its own contiguous slice of every global batch.

Evaluation never drops an example: the last batch is padded (with example 0) and masked.
A background thread builds the next batches while the current step runs.
"""
from __future__ import annotations

import queue
import threading
from typing import Callable, Iterator

import numpy as np

from svhn_jax.data.store import Split

Batch = dict[str, np.ndarray]


def concatenate(splits: list[Split]) -> Split:
    """Several splits (e.g. train + extra) as one."""
    if len(splits) == 1:
        return splits[0]
    return Split(images=np.concatenate([s.images for s in splits]),
                 lengths=np.concatenate([s.lengths for s in splits]),
                 digits=np.concatenate([s.digits for s in splits]),
                 filenames=np.concatenate([s.filenames for s in splits]),
                 attrs={**splits[0].attrs, "concatenated": len(splits)})


def training_arrays(split: Split) -> Batch:
    """What a reader's training batch holds of `split`: images, lengths, digits."""
    return {"images": split.images, "lengths": split.lengths, "digits": split.digits}


class TrainBatches:
    """Training batches as a function of the step: each holds the same rows of every array in `arrays`.

    `sort` puts each batch's indices in increasing order (the localiser's batches; the readers' keep
    the permutation's order).
    """

    def __init__(self, arrays: Batch, global_batch: int, seed: int, *, process_index: int = 0,
                 process_count: int = 1, sort: bool = False):
        size = len(next(iter(arrays.values())))
        if global_batch > size:
            raise ValueError(f"batch_size={global_batch} is larger than the training set ({size})")
        if global_batch % process_count:
            raise ValueError(f"batch_size={global_batch} must divide by the process count ({process_count})")
        self.arrays = arrays
        self.size = size
        self.global_batch = global_batch
        self.seed = seed
        self.sort = sort
        self.steps_per_epoch = size // global_batch
        local = global_batch // process_count
        self._local_slice = slice(process_index * local, (process_index + 1) * local)
        self._epoch, self._perm = -1, np.empty(0, np.int64)

    def global_indices(self, step: int) -> np.ndarray:
        epoch, k = divmod(step, self.steps_per_epoch)
        if epoch != self._epoch:
            self._epoch = epoch
            self._perm = np.random.default_rng([self.seed, epoch]).permutation(self.size)
        idx = self._perm[k * self.global_batch:(k + 1) * self.global_batch]
        return np.sort(idx) if self.sort else idx

    def local_batch(self, step: int) -> Batch:
        idx = self.global_indices(step)[self._local_slice]
        return {name: a[idx] for name, a in self.arrays.items()}


def eval_batches(split: Split, global_batch: int, *, process_index: int = 0, process_count: int = 1,
                 limit: int = 0) -> Iterator[tuple[Batch, int]]:
    """Yields (this process's slice of a padded global batch with a ``mask``, number of real examples).

    Examples come in file order; `limit` > 0 evaluates only the first `limit` examples.
    """
    n = min(len(split), limit) if limit else len(split)
    local = global_batch // process_count
    for start in range(0, n, global_batch):
        idx = np.arange(start, start + global_batch)
        mask = idx < n
        idx = np.where(mask, idx, 0)[process_index * local:(process_index + 1) * local]
        mask = mask[process_index * local:(process_index + 1) * local]
        yield ({"images": split.images[idx], "lengths": split.lengths[idx], "digits": split.digits[idx],
                "mask": mask}, int(min(global_batch, n - start)))


def prefetch(items: Iterator, transform: Callable = lambda x: x, size: int = 2) -> Iterator:
    """Runs `items` (and `transform` on each, e.g. placing it on devices) in a background thread."""
    q: queue.Queue = queue.Queue(maxsize=size)
    sentinel = object()
    errors: list[BaseException] = []
    stop = threading.Event()

    def worker() -> None:
        try:
            for item in items:
                if stop.is_set():
                    return
                q.put(transform(item))
        except BaseException as e:  # re-raised in the consumer
            errors.append(e)
        finally:
            q.put(sentinel)

    thread = threading.Thread(target=worker, daemon=True)
    thread.start()
    try:
        while (item := q.get()) is not sentinel:
            yield item
        if errors:
            raise errors[0]
    finally:
        stop.set()
