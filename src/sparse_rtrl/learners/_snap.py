"""SnAp-n: RTRL restricted to a fixed sparsity pattern of the influence matrix."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch

from .._validation import check_int_range
from ..cells import Cell
from ._base import Learner, RecurrentModel

# Reachability saturates within S steps, so a larger value only runs the loop that
# finds the fixed point. The bound rejects values far beyond any state size.
MAX_PATTERN_STEPS = 1_000_000


def jacobian_pattern(cell: Cell, probes: int = 2) -> torch.Tensor:
    """Return the (S, S) structural nonzeros of ``J_t``, probed at random points.

    A tanh RNN's ``J_t = diag(1 - h_t²) W`` has the pattern of ``W`` because
    ``1 - h_t²`` is never zero, so a dense ``W`` gives a dense pattern and a pruned
    ``W`` a sparse one. Any other cell is probed the same way. The union over
    ``probes`` random states and inputs guards against an entry that vanishes at one
    point by chance.
    """
    generator = torch.Generator().manual_seed(0)
    p = next(cell.parameters())
    pattern = torch.zeros(cell.state_size, cell.state_size, dtype=torch.bool)
    for _ in range(probes):
        state = 0.5 * torch.randn(cell.state_size, generator=generator)
        x = torch.randn(cell.input_size, generator=generator)
        _, jacobian, _ = cell.step_with_jacobians(
            state.to(p.dtype).to(p.device), x.to(p.dtype).to(p.device)
        )
        pattern |= (jacobian != 0).cpu()
    return pattern


def influence_pattern(cell: Cell, pattern_steps: int) -> torch.Tensor:
    """Return the (S, P) SnAp-n pattern: entries reachable from ``θ`` in n steps.

    ``pattern_1`` is the pattern of ``I_t``; ``pattern_{k+1} = pat(J) pattern_k ∪
    pattern_1`` in boolean arithmetic. The loop stops early at a fixed point, which
    it reaches within S steps, so ``pattern_steps ≥ S`` gives every entry that exact
    RTRL can make nonzero.
    """
    check_int_range("pattern_steps", pattern_steps, 1, MAX_PATTERN_STEPS)
    size, num_params = cell.state_size, cell.num_params
    immediate = torch.zeros(size, num_params, dtype=torch.bool)
    immediate.scatter_(1, cell.immediate_index.cpu(), True)
    jacobian = jacobian_pattern(cell).to(torch.float32)
    pattern = immediate
    for _ in range(pattern_steps - 1):
        grown = (jacobian @ pattern.to(torch.float32) > 0) | immediate
        if torch.equal(grown, pattern):
            break
        pattern = grown
    return pattern


@dataclass
class _Bucket:
    """Groups of influence columns that share a row set of one size.

    A group is a set of columns ``C`` whose pattern rows are the same set ``R``. Its
    influence block ``M[R, C]`` is dense. ``J_t[R, R]`` alone propagates it, because
    the entries of those columns outside ``R`` are zero by construction.

    Attributes:
      rows: (G, K) state rows of each group, ascending.
      cols: (G, C) parameter columns of each group.
      values: (G, K, C) influence entries ``M[rows, cols]``.
      spare: (G, K, C) second buffer, so a step writes without allocating.
      immediate_source: (E,) positions in the flattened (S·r) immediate values.
      immediate_target: (E,) positions in the flattened ``values``.
    """

    rows: torch.Tensor
    cols: torch.Tensor
    values: torch.Tensor
    spare: torch.Tensor
    immediate_source: torch.Tensor
    immediate_target: torch.Tensor


def _build_buckets(
    cell: Cell, pattern: torch.Tensor, dtype: torch.dtype, device
) -> list[_Bucket]:
    """Split the (S, P) ``pattern`` into dense blocks batched by shape."""
    size = cell.state_size
    columns = pattern.T  # (P, S)
    used = torch.nonzero(columns.any(dim=1)).squeeze(1)
    sets, group_of_used = torch.unique(
        columns[used].to(torch.uint8), dim=0, return_inverse=True
    )
    sets = sets.bool()  # (G, S)
    num_groups = sets.shape[0]
    group_of_col = torch.full((pattern.shape[1],), -1, dtype=torch.long)
    group_of_col[used] = group_of_used
    row_pos = torch.cumsum(sets.long(), dim=1) - 1  # (G, S) position of a row in R_g
    set_size = sets.sum(dim=1)  # (G,)
    order = torch.argsort(group_of_used, stable=True)
    counts = torch.bincount(group_of_used, minlength=num_groups).tolist()
    group_cols = torch.split(used[order], counts)  # ascending columns per group
    col_pos = torch.zeros(pattern.shape[1], dtype=torch.long)
    for cols in group_cols:
        col_pos[cols] = torch.arange(len(cols))

    shapes: dict[tuple[int, int], list[int]] = {}
    for g in range(num_groups):
        shapes.setdefault((int(set_size[g]), len(group_cols[g])), []).append(g)

    # Each nonzero of I_t lands in one group; locate it once, so a step only adds.
    index = cell.immediate_index.cpu()
    imm_rows = torch.arange(size).unsqueeze(1).expand_as(index).reshape(-1)
    imm_cols = index.reshape(-1)
    imm_group = group_of_col[imm_cols]

    buckets = []
    for (k, c), groups in shapes.items():
        groups_t = torch.tensor(groups, dtype=torch.long)
        rows = torch.nonzero(sets[groups_t])[:, 1].view(len(groups), k)
        cols = torch.stack([group_cols[g] for g in groups])
        slot = torch.full((num_groups,), -1, dtype=torch.long)
        slot[groups_t] = torch.arange(len(groups))
        chosen = torch.nonzero(slot[imm_group] >= 0).squeeze(1)
        g_of = imm_group[chosen]
        target = (slot[g_of] * k + row_pos[g_of, imm_rows[chosen]]) * c + col_pos[
            imm_cols[chosen]
        ]
        values = torch.zeros(len(groups), k, c, dtype=dtype, device=device)
        buckets.append(
            _Bucket(
                rows=rows.to(device),
                cols=cols.to(device),
                values=values,
                spare=torch.empty_like(values),
                immediate_source=chosen.to(device),
                immediate_target=target.to(device),
            )
        )
    return buckets


class _SnAp(Learner):
    """SnAp-n (Menick et al., 2021, "Practical real time recurrent learning with a
    sparse approximation"): RTRL that keeps only a fixed pattern of the influence.

        M_t = Π ⊙ (J_t M_{t-1} + I_t)
        g_t = (∂L_t/∂h_t)ᵀ M_t

    ``Π`` (S, P) is the SnAp-n pattern: ``Π_1 = pat(I_t)`` and ``Π_{k+1} = pat(J)
    Π_k ∪ Π_1``, with ``pat(J)`` the structural nonzeros of ``J_t`` (the pattern of
    ``W`` for the tanh RNN). ``pattern_steps ≥ S`` makes ``Π`` every entry exact
    RTRL can reach, so the learner equals ``ExactRTRL``.

    The pattern splits into groups of columns ``C`` that share one row set ``R``.
    Each group's block ``M[R, C]`` is stored dense and propagated by ``J_t[R, R]``,
    and groups of equal shape are batched into one ``bmm``. Cost per step is
    ``Σ_g |R_g|² |C_g|`` multiply-adds and memory ``Σ_g |R_g| |C_g| = nnz(Π)``.
    For the tanh RNN with ``n`` units and ``m`` inputs (``P = n² + nm + n``),
    SnAp-1 keeps one row per column, so it costs ``O(P)`` time and memory (only
    ``J_ii`` propagates). SnAp-2 with a dense ``W`` is the full pattern, with
    ``O(n² P)`` time like exact RTRL. With a ``W`` of density ``δ`` it costs about
    ``O(δ² n² P)``.

    NOTE: the pattern is fixed at construction from the weights at that time. If
    an optimizer turns a zero weight of a pruned ``W`` nonzero, the new path is not
    in ``Π`` and SnAp drops it. A cell that declares a dense immediate term (every
    parameter in every row) has a full pattern from n = 1, so SnAp costs as much as
    exact RTRL on it.

    Args:
      model: cell and readout.
      optimizer: applied at every step; None accumulates gradients in ``.grad``.
      pattern_steps: n of SnAp-n, in ``[1, 1_000_000]``.
      loss_fn: per-step loss.
    """

    default_pattern_steps: ClassVar[int]

    def __init__(
        self,
        model: RecurrentModel,
        optimizer=None,
        pattern_steps: int | None = None,
        loss_fn=None,
    ):
        kwargs = {} if loss_fn is None else {"loss_fn": loss_fn}
        super().__init__(model, optimizer, **kwargs)
        steps = self.default_pattern_steps if pattern_steps is None else pattern_steps
        self.pattern_steps = check_int_range(
            "pattern_steps", steps, 1, MAX_PATTERN_STEPS
        )
        self.pattern = influence_pattern(self.cell, self.pattern_steps)  # (S, P)
        self._buckets = _build_buckets(self.cell, self.pattern, self.dtype, self.device)
        self._output_mask = torch.zeros(
            self.cell.state_size, dtype=self.dtype, device=self.device
        )
        self._output_mask[self.cell.output_rows] = 1.0

    def trace_nbytes(self) -> int:
        """Bytes of the influence entries and their second buffer."""
        return sum(b.values.nbytes + b.spare.nbytes for b in self._buckets)

    def dense_influence(self) -> torch.Tensor:
        """Return the current influence as a dense (S, P) matrix, zero off ``Π``."""
        dense = torch.zeros(
            self.cell.state_size,
            self.cell.num_params,
            dtype=self.dtype,
            device=self.device,
        )
        for b in self._buckets:
            rows = b.rows.unsqueeze(2).expand_as(b.values)
            cols = b.cols.unsqueeze(1).expand_as(b.values)
            dense[rows, cols] = b.values
        return dense

    def _reset_traces(self):
        for b in self._buckets:
            b.values.zero_()

    def _advance(self, x):
        hidden, jacobian, immediate = self.cell.step_with_jacobians(
            self.state.hidden, x
        )
        flat_immediate = immediate.reshape(-1)  # (S·r,)
        for b in self._buckets:
            block = jacobian[b.rows.unsqueeze(2), b.rows.unsqueeze(1)]  # (G, K, K)
            if b.values.shape[0] == 1:
                # A single group, such as the full pattern, needs no batch.
                torch.mm(block[0], b.values[0], out=b.spare[0])
            else:
                torch.bmm(block, b.values, out=b.spare)
            b.spare.view(-1).index_add_(
                0, b.immediate_target, flat_immediate[b.immediate_source]
            )
            b.values, b.spare = b.spare, b.values
        return hidden

    def _cell_gradient(self, grad_state):
        masked = grad_state * self._output_mask  # (S,)
        grad = torch.zeros(self.cell.num_params, dtype=self.dtype, device=self.device)
        for b in self._buckets:
            per_col = torch.einsum("gk,gkc->gc", masked[b.rows], b.values)  # (G, C)
            grad[b.cols.reshape(-1)] = per_col.reshape(-1)
        return grad


class SnAp1(_SnAp):
    __doc__ = _SnAp.__doc__
    name = "snap1"
    default_pattern_steps = 1


class SnAp2(_SnAp):
    __doc__ = _SnAp.__doc__
    name = "snap2"
    default_pattern_steps = 2
