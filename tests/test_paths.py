"""Path selection strategies."""

import pytest
import torch

from sparse_rtrl.paths import SELECTIONS, PathSelector


@pytest.mark.parametrize("strategy", SELECTIONS)
@pytest.mark.parametrize("k", [1, 3, 8])
def test_selects_k_distinct_paths_per_row(strategy, k, generator):
    jacobian = torch.randn(8, 8, generator=generator)
    selector = PathSelector(strategy, k, 8, generator=generator)
    index = selector.select(jacobian)
    assert index.shape == (8, k)
    for row in index:
        assert len(set(row.tolist())) == k
    assert selector.mask(index).sum(dim=1).eq(k).all()


def test_topk_picks_largest_magnitudes():
    jacobian = torch.tensor([[0.1, -5.0, 2.0, 0.3], [4.0, 0.0, -0.2, -3.0]])
    jacobian = torch.cat([jacobian, jacobian.flip(1)])
    index = PathSelector("topk", 2, 4).select(jacobian)
    assert sorted(index[0].tolist()) == [1, 2]
    assert sorted(index[1].tolist()) == [0, 3]
    assert sorted(index[2].tolist()) == [1, 2]
    assert sorted(index[3].tolist()) == [0, 3]


def test_bottomk_picks_smallest_magnitudes():
    jacobian = torch.tensor(
        [
            [0.1, -5.0, 2.0, 0.3],
            [4.0, 0.0, -0.2, -3.0],
            [1.0, 2.0, 3.0, 4.0],
            [-1.0, -2.0, -3.0, -4.0],
        ]
    )
    index = PathSelector("bottomk", 2, 4).select(jacobian)
    assert sorted(index[0].tolist()) == [0, 3]
    assert sorted(index[1].tolist()) == [1, 2]
    assert sorted(index[2].tolist()) == [0, 1]
    assert sorted(index[3].tolist()) == [0, 1]


@pytest.mark.parametrize("strategy", SELECTIONS)
def test_keep_self_keeps_diagonal(strategy, generator):
    size = 10
    jacobian = torch.randn(size, size, generator=generator)
    # A zero diagonal is never among the top-k by magnitude without keep_self.
    jacobian.fill_diagonal_(0.0)
    if strategy == "bottomk":
        jacobian.fill_diagonal_(100.0)
    selector = PathSelector(strategy, 3, size, keep_self=True, generator=generator)
    for _ in range(3):
        mask = selector.mask(selector.select(jacobian))
        assert mask.diagonal().all()
        assert mask.sum(dim=1).eq(3).all()


@pytest.mark.parametrize("strategy", ["random", "resample"])
def test_same_seed_gives_same_paths(strategy):
    first = PathSelector(strategy, 3, 12, generator=torch.Generator().manual_seed(5))
    second = PathSelector(strategy, 3, 12, generator=torch.Generator().manual_seed(5))
    other = PathSelector(strategy, 3, 12, generator=torch.Generator().manual_seed(6))
    a, b, c = first.select(None), second.select(None), other.select(None)
    assert torch.equal(a.sort(1).values, b.sort(1).values)
    assert not torch.equal(a.sort(1).values, c.sort(1).values)


def test_random_is_fixed_and_resample_changes(generator):
    fixed = PathSelector("random", 2, 16, generator=generator)
    assert torch.equal(fixed.select(None), fixed.select(None))
    moving = PathSelector("resample", 2, 16, generator=generator)
    draws = [moving.select(None).sort(1).values for _ in range(3)]
    assert not torch.equal(draws[0], draws[1]) or not torch.equal(draws[1], draws[2])


def test_zero_paths_gives_empty_index():
    index = PathSelector("topk", 0, 5).select(torch.ones(5, 5))
    assert index.shape == (5, 0)


@pytest.mark.parametrize(
    "kwargs,message",
    [
        (
            {"strategy": "random", "k": -1, "size": 4},
            r"k must be in \[0, 4\]; got k=-1",
        ),
        ({"strategy": "random", "k": 5, "size": 4}, r"k must be in \[0, 4\]; got k=5"),
        ({"strategy": "greedy", "k": 1, "size": 4}, "selection must be one of"),
        (
            {"strategy": "topk", "k": 0, "size": 4, "keep_self": True},
            "keep_self needs k >= 1",
        ),
    ],
)
def test_invalid_selector_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        PathSelector(**kwargs)


def test_topk_without_jacobian_raises():
    with pytest.raises(ValueError, match="needs the Jacobian"):
        PathSelector("topk", 1, 3).select(None)
