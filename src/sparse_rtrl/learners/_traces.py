"""Eligibility-trace learners: RFLO and e-prop."""

from __future__ import annotations

import math

import torch

from .._validation import check_choice, check_positive
from ..cells import Cell
from ._base import Learner, RecurrentModel

FEEDBACKS = ("exact", "random")


class _TraceLearner(Learner):
    """A learner whose trace ``e_t`` has the sparsity of ``I_t``: (S, r) values at
    the columns ``immediate_index``, so memory is ``O(S r)``, ``O(P)`` for the RNN.

    With ``feedback="exact"`` the error reaching the hidden state is ``∂L_t/∂h_t =
    Vᵀ ∂L_t/∂y_t``, with V the readout weight. With ``"random"`` it is ``B
    ∂L_t/∂y_t``, where ``B`` is a fixed (hidden_size, d) matrix of N(0,
    1/hidden_size) entries drawn at construction. The readout itself always gets
    its exact gradient.
    """

    def __init__(
        self,
        model: RecurrentModel,
        optimizer=None,
        feedback: str = "exact",
        generator: torch.Generator | None = None,
        loss_fn=None,
    ):
        kwargs = {} if loss_fn is None else {"loss_fn": loss_fn}
        super().__init__(model, optimizer, **kwargs)
        self.feedback = check_choice("feedback", feedback, FEEDBACKS)
        self.trace = torch.zeros(
            self.cell.immediate_index.shape, dtype=self.dtype, device=self.device
        )  # (S, r)
        self.feedback_matrix = None
        if feedback == "random":
            n, d = self.cell.hidden_size, model.output_size
            draw = torch.randn(n, d, generator=generator, dtype=torch.float64)
            self.feedback_matrix = (draw / math.sqrt(n)).to(self.dtype).to(self.device)
        self._target: torch.Tensor | None = None

    def trace_nbytes(self) -> int:
        """Bytes of the eligibility trace."""
        return self.trace.nbytes

    def _reset_traces(self):
        self.trace.zero_()

    def step(self, x, y=None, learn=True):
        # Random feedback needs ∂L_t/∂y_t, which the base class does not pass on.
        self._target = y
        return super().step(x, y, learn)

    def _hidden_error(self, grad_state: torch.Tensor) -> torch.Tensor:
        """Return the (hidden_size,) error that reaches ``h_t`` under ``feedback``."""
        rows = self.cell.output_rows
        if self.feedback_matrix is None:
            return grad_state[rows]
        with torch.enable_grad():
            hidden = self.cell.output(self.state.hidden)
            prediction = self.model.readout(hidden).detach().requires_grad_(True)
            loss = self.loss_fn(prediction, self._target)
            (output_error,) = torch.autograd.grad(loss, [prediction])
        return self.feedback_matrix @ output_error

    def _cell_gradient(self, grad_state):
        rows = self.cell.output_rows
        error = self._hidden_error(grad_state)  # (hidden_size,)
        grad = torch.zeros(self.cell.num_params, dtype=self.dtype, device=self.device)
        grad.index_add_(
            0,
            self.cell.immediate_index[rows].reshape(-1),
            (error.unsqueeze(1) * self.trace[rows]).reshape(-1),
        )
        return grad


class RFLO(_TraceLearner):
    """Random-feedback local online learning (Murray, 2019, "Local online learning
    in recurrent networks with random feedback").

        e_t = (1 − 1/τ) e_{t-1} + (1/τ) I_t
        g_t = δ_tᵀ e_t,   δ_t = Vᵀ ∂L_t/∂y_t  (feedback="exact")
                           δ_t = B ∂L_t/∂y_t   (feedback="random")

    Murray's network is leaky, ``h_t = (1 − 1/τ) h_{t-1} + (1/τ) tanh(a_t)``, and
    its trace for ``W_ij`` is ``e_ij ← (1 − 1/τ) e_ij + (1/τ) tanh'(a_i) h_{t-1,j}``:
    it keeps the leak and drops every path through ``W``. This project's cells are
    not leaky (``τ = 1``, ``h_t = tanh(a_t)``), and there ``(1/τ) tanh'(a_i)
    h_{t-1,j}`` is exactly ``I_t[i, W_ij]``. So ``tau = 1`` is RFLO for this cell
    (the trace is ``I_t``, as in sparse RTRL with ``k = 0``). ``tau > 1`` keeps
    Murray's leaky trace on a non-leaky cell: a low-pass filter of ``I_t`` that
    replaces the dropped ``J_t`` with the constant ``1 − 1/τ``. The same trace
    works on any cell, from its ``I_t``.

    Cost per step ``O(S r)``, ``O(P)`` for the tanh RNN; memory ``O(S r)``.

    Args:
      model: cell and readout.
      optimizer: applied at every step; None accumulates gradients in ``.grad``.
      tau: trace time constant τ in steps, ≥ 1.
      feedback: ``"exact"`` (readout transpose) or ``"random"`` (fixed ``B``).
      generator: source of ``B``.
      loss_fn: per-step loss.
    """

    name = "rflo"

    def __init__(
        self,
        model: RecurrentModel,
        optimizer=None,
        tau: float = 1.0,
        feedback: str = "exact",
        generator: torch.Generator | None = None,
        loss_fn=None,
    ):
        check_positive("tau", tau)
        if tau < 1:
            raise ValueError(f"tau must be in [1, inf); got tau={tau}")
        super().__init__(model, optimizer, feedback, generator, loss_fn)
        self.tau = float(tau)

    def _advance(self, x):
        hidden, _, immediate = self.cell.step_with_jacobians(self.state.hidden, x)
        keep = 1.0 - 1.0 / self.tau
        self.trace = keep * self.trace + immediate / self.tau
        return hidden


def _lstm_class() -> type[Cell] | None:
    from .. import cells

    return getattr(cells, "LSTMCell", None)


class EProp(_TraceLearner):
    """e-prop (Bellec et al., 2020, "A solution to the learning dilemma for
    recurrent networks of spiking neurons"), eligibility through each unit's own
    state only.

        e_t[i, :] = J_t[i, σ(i)] e_{t-1}[σ(i), :] + I_t[i, :]
        g_t = δ_tᵀ e_t

    with ``σ(i)`` the state row that carries unit ``i``'s memory. For a cell whose
    state is ``h`` (the tanh RNN), ``σ(i) = i``: the trace keeps the diagonal of
    ``J_t``, ``e_t = diag(J_t) e_{t-1} + I_t``. For ``LSTMCell`` (state ``(h, c)``)
    ``σ(h_i) = σ(c_i) = c_i``: the eligibility vector ``ε_t = f_t ε_{t-1} + ∂c_t/∂θ``
    follows the ``c_i → c_i`` path, and the trace of ``h_i`` is ``∂h_t/∂c_t ε_t +
    ∂h_t/∂θ``, which is ``J_t[h_i, c_i] e_{t-1}[c_i] + I_t[h_i]`` in this form. Paths
    through ``h_{t-1}`` are dropped. ``δ_t`` is the error under ``feedback`` (see
    RFLO).

    Cost per step and memory ``O(S r)``: ``O(P)`` for the tanh RNN and the LSTM.
    Other cells with a two-part state raise ``NotImplementedError``. A cell with a
    one-part state and a dense immediate term gets an (S, P) trace, as large as the
    exact influence.

    Args:
      model: cell and readout.
      optimizer: applied at every step; None accumulates gradients in ``.grad``.
      feedback: ``"exact"`` (readout transpose) or ``"random"`` (fixed ``B``).
      generator: source of ``B``.
      loss_fn: per-step loss.

    Raises:
      NotImplementedError: the cell's state has more than one part and it is not
        an ``LSTMCell`` whose ``h_i`` and ``c_i`` rows share their parameter columns.
    """

    name = "eprop"

    def __init__(
        self,
        model: RecurrentModel,
        optimizer=None,
        feedback: str = "exact",
        generator: torch.Generator | None = None,
        loss_fn=None,
    ):
        self_rows = _self_rows(model.cell)
        super().__init__(model, optimizer, feedback, generator, loss_fn)
        self._self_rows = self_rows.to(self.device)  # (S,) σ(i)
        self._rows = torch.arange(self.cell.state_size, device=self.device)

    def _advance(self, x):
        hidden, jacobian, immediate = self.cell.step_with_jacobians(
            self.state.hidden, x
        )
        decay = jacobian[self._rows, self._self_rows].unsqueeze(1)  # (S, 1)
        self.trace = decay * self.trace[self._self_rows] + immediate
        return hidden


def _self_rows(cell: Cell) -> torch.Tensor:
    """Return σ: (S,) the state row that carries each row's own memory."""
    if cell.state_multiplier == 1:
        return torch.arange(cell.state_size)
    lstm = _lstm_class()
    if cell.state_multiplier != 2 or lstm is None or not isinstance(cell, lstm):
        raise NotImplementedError(
            f"learner 'eprop' supports cells with one state row per unit and "
            f"LSTMCell; got {type(cell).__name__} with "
            f"state_multiplier={cell.state_multiplier}"
        )
    n = cell.hidden_size
    index = cell.immediate_index
    if cell.output_rows != slice(0, n) or not torch.equal(index[:n], index[n:]):
        raise NotImplementedError(
            f"learner 'eprop' needs {type(cell).__name__} to keep h in state rows "
            "[0, n) and c in [n, 2n), with the h_i and c_i rows listing the same "
            "parameter columns in immediate_index"
        )
    cell_rows = torch.arange(n, 2 * n)
    return torch.cat([cell_rows, cell_rows])
