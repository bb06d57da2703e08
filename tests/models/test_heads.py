"""Loss and decoding of both head types on hand-made logits."""
import jax.numpy as jnp
import numpy as np
import pytest

from svhn_jax.models import heads

BIG = 20.0


def one_hot_logits(classes, num_classes):
    return jnp.asarray(np.eye(num_classes)[classes] * BIG, jnp.float32)


def test_blank_head_decodes_up_to_first_blank():
    # positions: 1, 9, blank, 3 (ignored after the blank), blank
    logits = {"digits": one_hot_logits([[1, 9, 10, 3, 10]], 11)}
    length, digits, conf = heads.decode(logits)
    assert length.tolist() == [2]
    assert digits.tolist() == [[1, 9, 10, 10, 10]]
    # confidence = product of the chosen classes' probabilities, position 3 forced to blank (p=e^-20/Z)
    p_top = 1 / (1 + 10 * np.exp(-BIG))
    p_other = np.exp(-BIG) / (1 + 10 * np.exp(-BIG))
    np.testing.assert_allclose(conf, [p_top ** 4 * p_other], rtol=1e-5)


def test_blank_head_five_digits_and_loss():
    logits = {"digits": jnp.zeros((1, 5, 11))}
    labels_len, labels = jnp.array([2]), jnp.array([[4, 2, 10, 10, 10]])
    # uniform logits: cross-entropy is log(11) at every position
    np.testing.assert_allclose(heads.per_example_loss(logits, labels_len, labels), [np.log(11)], rtol=1e-6)
    logits = {"digits": one_hot_logits([[1, 2, 3, 4, 5]], 11)}
    length, digits, _ = heads.decode(logits)
    assert length.tolist() == [5] and digits.tolist() == [[1, 2, 3, 4, 5]]


def test_length_head_decodes_and_masks_loss():
    logits = {"length": one_hot_logits([3, 6, 0], 7),
              "digits": one_hot_logits([[7, 0, 5, 9, 9], [1, 1, 1, 1, 1], [2, 2, 2, 2, 2]], 10)}
    length, digits, conf = heads.decode(logits)
    assert length.tolist() == [3, 0, 0]  # ">5" and 0 both decode to an empty answer
    assert digits.tolist() == [[7, 0, 5, 10, 10], [10] * 5, [10] * 5]
    p7 = 1 / (1 + 6 * np.exp(-BIG))
    p10 = 1 / (1 + 9 * np.exp(-BIG))
    np.testing.assert_allclose(conf[0], p7 * p10 ** 3, rtol=1e-5)
    # loss: log 7 for the length + log 10 per digit inside the true length, nothing outside
    uniform = {"length": jnp.zeros((2, 7)), "digits": jnp.zeros((2, 5, 10))}
    loss = heads.per_example_loss(uniform, jnp.array([1, 4]), jnp.array([[3, 10, 10, 10, 10], [1, 2, 3, 4, 10]]))
    np.testing.assert_allclose(loss, [np.log(7) + np.log(10), np.log(7) + 4 * np.log(10)], rtol=1e-6)


def test_unknown_head_is_an_error():
    with pytest.raises(ValueError, match="unknown head"):
        heads.SequenceHeads("bogus").init(__import__("jax").random.key(0), jnp.zeros((1, 4)))
