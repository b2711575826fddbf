"""Path selection: which k entries of each row of ``J_t`` sparse RTRL keeps."""

from __future__ import annotations

import torch

from ._validation import check_choice, check_int_range

SELECTIONS = ("random", "resample", "topk", "bottomk")


class PathSelector:
    """Choose ``k`` source units ``S_i`` for every row ``i`` of ``J_t``.

    Strategies:
      ``random``: drawn uniformly once, at construction, and kept.
      ``resample``: drawn uniformly again at every step.
      ``topk``: the k largest ``|J_t[i, j]|`` of each row, at every step.
      ``bottomk``: the k smallest ``|J_t[i, j]|``, the adversarial choice.

    With ``keep_self`` the self path ``j = i`` is always among the k (so ``k ≥ 1``
    is required), and the other ``k - 1`` follow the strategy.

    Args:
      strategy: one of ``SELECTIONS``.
      k: paths per row, in ``[0, size]``.
      size: number of state rows ``S`` (the Jacobian is S × S).
      keep_self: always keep the diagonal path.
      generator: source of the random draws; the same seed gives the same paths.
    """

    def __init__(
        self,
        strategy: str,
        k: int,
        size: int,
        keep_self: bool = False,
        generator: torch.Generator | None = None,
        device: torch.device | str = "cpu",
    ):
        check_choice("selection", strategy, SELECTIONS)
        check_int_range("k", k, 0, size, f"for a state of size {size}")
        if keep_self and k == 0:
            raise ValueError("keep_self needs k >= 1; got k=0 with keep_self=True")
        self.strategy = strategy
        self.k = k
        self.size = size
        self.keep_self = keep_self
        self.generator = generator
        self.device = torch.device(device)
        self._diagonal = torch.arange(size, device=self.device)
        self._fixed = self._draw() if strategy == "random" else None

    def select(self, jacobian: torch.Tensor | None = None) -> torch.Tensor:
        """Return the (S, k) int64 source rows of the kept paths for this step.

        Args:
          jacobian: (S, S) ``J_t``; needed by ``topk`` and ``bottomk``.
        """
        if self.strategy == "random":
            return self._fixed
        if self.strategy == "resample":
            return self._draw()
        if jacobian is None:
            raise ValueError(f"selection {self.strategy!r} needs the Jacobian")
        score = jacobian.abs()
        if self.strategy == "bottomk":
            score = -score
        return self._top(score)

    def _draw(self) -> torch.Tensor:
        # Random scores on the CPU generator keep paths identical across devices.
        score = torch.rand(self.size, self.size, generator=self.generator)
        return self._top(score.to(self.device))

    def _top(self, score: torch.Tensor) -> torch.Tensor:
        if self.k == 0:
            return torch.empty(self.size, 0, dtype=torch.long, device=score.device)
        if self.keep_self:
            score = score.clone()
            score[self._diagonal, self._diagonal] = torch.inf
        return torch.topk(score, self.k, dim=1, sorted=False).indices

    def mask(self, index: torch.Tensor) -> torch.Tensor:
        """Return the dense (S, S) bool mask of the paths in ``index`` (S, k)."""
        dense = torch.zeros(self.size, self.size, dtype=torch.bool, device=index.device)
        dense.scatter_(1, index, True)
        return dense
