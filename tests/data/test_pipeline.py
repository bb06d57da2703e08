"""The input pipeline: batches are a function of (seed, step); evaluation covers every example once."""
import numpy as np
import pytest

from svhn_jax.data import pipeline, store


def make_split(n):
    lengths, digits = store.encode_labels([[i % 10] for i in range(n)])
    return store.Split(images=np.arange(n, dtype=np.uint8).reshape(n, 1, 1, 1), lengths=lengths,
                       digits=digits, filenames=np.array([f"{i}.png" for i in range(n)], object), attrs={})


def test_batch_is_a_function_of_seed_and_step():
    arrays = pipeline.training_arrays(make_split(100))
    a, b = pipeline.TrainBatches(arrays, 16, seed=7), pipeline.TrainBatches(arrays, 16, seed=7)
    for step in [0, 1, 2, 13, 5, 40]:  # b jumps around; a walks in order
        np.testing.assert_array_equal(a.global_indices(step), b.global_indices(step))
    epoch0 = np.concatenate([a.global_indices(s) for s in range(6)])  # 6 full batches per epoch
    assert len(set(epoch0.tolist())) == 96  # no repeats inside an epoch
    assert not np.array_equal(a.global_indices(0), a.global_indices(6))  # a new order each epoch
    assert not np.array_equal(a.global_indices(0), pipeline.TrainBatches(arrays, 16, seed=8).global_indices(0))
    ordered = pipeline.TrainBatches(arrays, 16, seed=7, sort=True)  # the localiser's: the same rows, in order
    np.testing.assert_array_equal(ordered.global_indices(13), np.sort(a.global_indices(13)))
    assert ordered.local_batch(13).keys() == {"images", "lengths", "digits"}


def test_processes_read_disjoint_slices_of_the_same_global_batch():
    arrays = pipeline.training_arrays(make_split(100))
    parts = [pipeline.TrainBatches(arrays, 16, 3, process_index=p, process_count=2).local_batch(5)["images"]
             for p in range(2)]
    whole = pipeline.TrainBatches(arrays, 16, 3).local_batch(5)["images"]
    np.testing.assert_array_equal(np.concatenate(parts), whole)


def test_eval_pads_the_last_batch_and_masks_it():
    split = make_split(70)
    seen = []
    for batch, real in pipeline.eval_batches(split, 32):
        assert batch["images"].shape[0] == 32
        seen += batch["images"][batch["mask"]].ravel().tolist()
        assert batch["mask"].sum() == real
    assert seen == list(range(70))


def test_batch_larger_than_split_is_an_error():
    with pytest.raises(ValueError, match="larger than the training set"):
        pipeline.TrainBatches(pipeline.training_arrays(make_split(8)), 16, 0)


def test_prefetch_reraises_errors():
    def items():
        yield 1
        raise RuntimeError("boom")
    with pytest.raises(RuntimeError, match="boom"):
        list(pipeline.prefetch(items()))
