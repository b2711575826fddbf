"""The batched learner against the same learners run one stream at a time."""

import copy

import pytest
import torch
from helpers import make_rnn_model, random_sequence

from sparse_rtrl._validation import NonFiniteError
from sparse_rtrl.learners import ExactRTRL, SparseRTRL
from sparse_rtrl.learners._batched import BatchedRTRL


def adam(params):
    return torch.optim.Adam(params, lr=1e-2)


@pytest.mark.parametrize(
    "k,selection,rescale,decay",
    [
        (None, "random", False, 1.0),
        (None, "random", False, 0.9),
        (3, "random", False, 1.0),
        (3, "random", True, 0.8),
        (2, "resample", True, 1.0),
        (9, "topk", False, 1.0),
        (0, "random", False, 1.0),
    ],
)
def test_batched_matches_unbatched(k, selection, rescale, decay):
    n, m, d, steps, batch = 9, 2, 2, 25, 3
    models = [make_rnn_model(n, m, d, seed=s) for s in range(batch)]
    data = [random_sequence(steps, m, d, seed=s) for s in range(batch)]

    expected_losses, expected_models = [], []
    for b in range(batch):
        model = copy.deepcopy(models[b])
        optimizer = adam(list(model.parameters()))
        if k is None:
            learner = ExactRTRL(model, optimizer, decay=decay)
        else:
            learner = SparseRTRL(
                model,
                optimizer,
                k=k,
                selection=selection,
                rescale=rescale,
                generator=torch.Generator().manual_seed(b),
                decay=decay,
            )
        x, y = data[b]
        expected_losses.append(
            torch.stack([learner.step(xt, yt) for xt, yt in zip(x, y)])
        )
        expected_models.append((model, learner.last_prediction))

    generators = [torch.Generator().manual_seed(b) for b in range(batch)]
    batched = BatchedRTRL(
        models,
        adam,
        k=k,
        selection=selection,
        rescale=rescale,
        generators=generators,
        decay=decay,
    )
    inputs = torch.stack([x for x, _ in data], dim=1)  # (T, B, m)
    targets = torch.stack([y for _, y in data], dim=1)  # (T, B, d)
    losses = torch.stack([batched.step(x, y) for x, y in zip(inputs, targets)])

    torch.testing.assert_close(
        losses.T, torch.stack(expected_losses), rtol=1e-9, atol=1e-12
    )
    for b, (model, prediction) in enumerate(expected_models):
        torch.testing.assert_close(
            batched.last_prediction[b], prediction, rtol=1e-9, atol=1e-12
        )
        torch.testing.assert_close(
            batched.weight_hh[b], model.cell.weight_hh, rtol=1e-9, atol=1e-12
        )
        torch.testing.assert_close(
            batched.readout_weight[b], model.readout.weight, rtol=1e-9, atol=1e-12
        )


def test_batched_rejects_other_cells_and_sizes():
    a = make_rnn_model(4, 2, 1, seed=0)
    b = make_rnn_model(5, 2, 1, seed=1)
    with pytest.raises(ValueError, match="same sizes"):
        BatchedRTRL([a, b])
    with pytest.raises(ValueError, match=r"k must be in \[0, 4\]"):
        BatchedRTRL([a], k=5)
    with pytest.raises(ValueError, match="at least one model"):
        BatchedRTRL([])
    with pytest.raises(ValueError, match=r"decay must be in \[0, 1\]; got decay=1.5"):
        BatchedRTRL([a], k=1, decay=1.5)


def test_batched_rejects_wrong_input_shape():
    learner = BatchedRTRL([make_rnn_model(4, 2, 1, seed=0)] * 2, k=1)
    with pytest.raises(ValueError, match=r"x must have shape \(2, 2\)"):
        learner.step(
            torch.zeros(3, 2, dtype=torch.float64),
            torch.zeros(2, 1, dtype=torch.float64),
        )


def test_batched_rejects_infinite_loss_without_learning():
    models = [make_rnn_model(4, 2, 1, seed=s) for s in range(2)]
    learner = BatchedRTRL(models, k=1)
    x = torch.zeros(2, 2, dtype=torch.float64)
    y = torch.tensor([[0.0], [1e300]], dtype=torch.float64)
    with pytest.raises(
        NonFiniteError, match=r"loss is NaN or Inf at step 0 in streams \[1\]"
    ):
        learner.step(x, y, learn=False)
