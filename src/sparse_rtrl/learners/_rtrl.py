"""Exact and sparse real-time recurrent learning."""

from __future__ import annotations

import torch

from .._validation import check_choice, check_int_range, check_non_negative
from ..kernels import (
    check_memory,
    estimate_influence_memory,
    exact_propagate,
    sparse_propagate,
)
from ..paths import SELECTIONS, PathSelector
from ._base import Learner, RecurrentModel


class _InfluenceLearner(Learner):
    """A learner that carries an influence matrix ``M_t`` of shape (S, P)."""

    def __init__(self, model: RecurrentModel, optimizer=None, loss_fn=None, decay=1.0):
        kwargs = {} if loss_fn is None else {"loss_fn": loss_fn}
        super().__init__(model, optimizer, **kwargs)
        check_non_negative("decay", decay)
        if decay > 1:
            raise ValueError(f"decay must be in [0, 1]; got decay={decay}")
        self.decay = float(decay)
        shape = (self.cell.state_size, self.cell.num_params)
        needed = estimate_influence_memory(
            shape[0],
            shape[1],
            getattr(self, "k", 0) or 0,
            dtype=self.dtype,
            immediate_size=self.cell.immediate_index.shape[1],
        )
        check_memory(
            needed, self.device, f"the (S, P) = {shape} influence of {self.name}"
        )
        self.influence = torch.zeros(shape, dtype=self.dtype, device=self.device)
        # A second buffer so each step writes M_t without allocating or aliasing.
        self._spare = torch.empty_like(self.influence)

    def _reset_traces(self):
        self.influence.zero_()

    def _cell_gradient(self, grad_state):
        rows = self.cell.output_rows
        return grad_state[rows] @ self.influence[rows]  # (P,)


class ExactRTRL(_InfluenceLearner):
    """Exact RTRL (Williams and Zipser, 1989).

        M_t = decay · J_t M_{t-1} + I_t
        g_t = (∂L_t/∂h_t)ᵀ M_t

    ``decay = 1`` is exact RTRL; a smaller value fades old influence.

    Args:
      model: cell and readout.
      optimizer: applied at every step; None accumulates gradients in ``.grad``.
      loss_fn: per-step loss.
      decay: trace decay in [0, 1].
    """

    name = "exact"

    def _advance(self, x):
        hidden, jacobian, immediate = self.cell.step_with_jacobians(
            self.state.hidden, x
        )
        if self.decay != 1.0:
            jacobian = jacobian * self.decay
        exact_propagate(
            jacobian, self.influence, immediate, self.cell.immediate_index, self._spare
        )
        self.influence, self._spare = self._spare, self.influence
        return hidden


class SparseRTRL(_InfluenceLearner):
    """Sparse RTRL: the influence flows through k of the S paths into each unit.

        M_t[i, :] = c · decay · Σ_{j ∈ S_i} J_t[i, j] M_{t-1}[j, :] + I_t[i, :]
        g_t = (∂L_t/∂h_t)ᵀ M_t                                  |S_i| = k

    with ``c = S/k`` when ``rescale`` and 1 otherwise. ``k = S`` is exact RTRL and
    ``k = 0`` keeps only the immediate term. Path sets ``S_i`` come from
    ``PathSelector`` (``random``, ``resample``, ``topk``, ``bottomk``).

    Args:
      model: cell and readout.
      optimizer: applied at every step; None accumulates gradients in ``.grad``.
      k: paths per unit, in ``[0, S]``.
      selection: path selection strategy.
      keep_self: always keep the self path ``j = i``.
      rescale: multiply the kept paths by ``S/k`` to preserve the row sum in
        expectation.
      generator: source of random path draws.
      loss_fn: per-step loss.
      decay: trace decay in [0, 1].
      backend: propagation kernel (``auto``, ``reference``, ``numba``,
        ``triton``). Except with ``reference``, ``k > max(8, S/2)`` uses one
        dense product with the masked Jacobian, which is faster there.
    """

    name = "sparse"

    def __init__(
        self,
        model: RecurrentModel,
        optimizer=None,
        k: int = 4,
        selection: str = "random",
        keep_self: bool = False,
        rescale: bool = False,
        generator: torch.Generator | None = None,
        loss_fn=None,
        decay: float = 1.0,
        backend: str = "auto",
    ):
        size = model.cell.state_size
        check_int_range("k", k, 0, size, f"for a state of size {size}")
        check_choice("selection", selection, SELECTIONS)
        self.k = k
        super().__init__(model, optimizer, loss_fn, decay)
        self.backend = backend
        self.selector = PathSelector(
            selection, k, size, keep_self, generator, device=self.device
        )
        self.scale = self.decay * (size / k if rescale and k > 0 else 1.0)
        self.paths = self.selector.select(None) if selection == "random" else None
        # Measured at S = 64-256: the numba kernel takes 0.44-0.88x the time of one
        # dense product with k = S/2, 0.74-1.08x with k = 3S/4 and 1.4-2.1x with
        # k = S. Above S/2 paths the masked Jacobian therefore goes through the
        # dense product. Both compute the same sum in another order.
        self.dense = backend != "reference" and k > max(8, size // 2)
        # The numba kernel adds the immediate terms while a segment is in cache
        # only when each row's columns ascend, and the LSTM's do not. They are
        # sorted once here, and the immediate values are permuted to match at
        # every step (a stable sort keeps repeated columns in their order).
        index = self.cell.immediate_index
        self._immediate_index = index
        self._immediate_order = None
        if not bool((index[:, 1:] >= index[:, :-1]).all()):
            self._immediate_order = torch.argsort(index, dim=1, stable=True)
            self._immediate_index = index.gather(1, self._immediate_order)

    def _advance(self, x):
        hidden, jacobian, immediate = self.cell.step_with_jacobians(
            self.state.hidden, x
        )
        index = self.selector.select(jacobian)  # (S, k)
        self.paths = index
        if self.dense:
            masked = torch.zeros_like(jacobian).scatter_(
                1, index, torch.gather(jacobian, 1, index) * self.scale
            )  # (S, S), zero outside the kept paths
            exact_propagate(
                masked,
                self.influence,
                immediate,
                self.cell.immediate_index,
                self._spare,
            )
            self.influence, self._spare = self._spare, self.influence
            return hidden
        values = torch.gather(jacobian, 1, index)  # (S, k)
        if self.scale != 1.0:
            values = values * self.scale
        if self._immediate_order is not None:
            immediate = immediate.gather(1, self._immediate_order)
        sparse_propagate(
            self.influence,
            values,
            index,
            immediate,
            self._immediate_index,
            out=self._spare,
            backend=self.backend,
        )
        self.influence, self._spare = self._spare, self.influence
        return hidden
