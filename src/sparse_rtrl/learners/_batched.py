"""Several independent tanh-RNN learners advanced as one batch."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import nn

from .._validation import (
    NonFiniteError,
    check_choice,
    check_int_range,
    check_non_negative,
    check_shape,
)
from ..cells import TanhRNNCell
from ..kernels import (
    check_memory,
    estimate_influence_memory,
    exact_propagate,
    sparse_propagate,
)
from ..paths import SELECTIONS, PathSelector
from ._base import RecurrentModel


class BatchedRTRL:
    """Exact or sparse RTRL for ``B`` independent tanh-RNN models in one batch.

    Stream ``b`` follows the same update rule as ``SparseRTRL`` (``k`` given) or
    ``ExactRTRL`` (``k=None``) on its own model, with MSE loss:

        M_t^b[i, :] = c·decay·Σ_{j ∈ S_i^b} J_t^b[i, j] M_{t-1}^b[j, :] + I_t^b[i, :]
        g_t^b = (∂L_t^b/∂h_t^b)ᵀ M_t^b

    Parameters of the ``B`` models are stacked along a leading axis and trained by
    one optimizer. For element-wise optimizers (Adam, SGD without coupling between
    entries) this equals ``B`` separate optimizers, so stream ``b`` reproduces the
    unbatched learner on model ``b``. The per-step Python overhead is paid once per
    batch, which is what makes many small runs (seeds, settings) cheaper.

    Args:
      models: ``B`` models with ``TanhRNNCell`` cells of the same sizes, dtype and
        device; they are copied, not modified.
      optimizer: ``optimizer(params) -> torch.optim.Optimizer`` over the stacked
        parameters, or None to accumulate gradients in ``.grad``.
      k: paths per unit, in ``[0, n]``; None for exact RTRL.
      selection: path selection strategy of every stream.
      keep_self: always keep the self path.
      rescale: multiply kept paths by ``n/k``.
      generators: one generator per stream for the path draws.
      backend: propagation kernel.
      decay: trace decay in [0, 1], as in ``ExactRTRL`` and ``SparseRTRL``.

    Attributes:
      weight_hh: (B, n, n), ``weight_ih``: (B, n, m), ``bias``: (B, n),
      readout_weight: (B, d, n), ``readout_bias``: (B, d) stacked parameters.
      influence: (B, n, P) influence matrices.
      hidden: (B, n) current states.
      last_prediction: (B, d) readout of the last step (None before the first).
    """

    def __init__(
        self,
        models: Sequence[RecurrentModel],
        optimizer: Callable[[list[nn.Parameter]], torch.optim.Optimizer] | None = None,
        k: int | None = None,
        selection: str = "random",
        keep_self: bool = False,
        rescale: bool = False,
        generators: Sequence[torch.Generator] | None = None,
        backend: str = "auto",
        decay: float = 1.0,
    ):
        if not models:
            raise ValueError("models must contain at least one model; got none")
        cells = [model.cell for model in models]
        for cell in cells:
            if type(cell) is not TanhRNNCell:
                raise NotImplementedError(
                    f"BatchedRTRL supports TanhRNNCell only; got {type(cell).__name__}"
                )
        first = cells[0]
        for cell in cells[1:]:
            if (cell.input_size, cell.hidden_size) != (
                first.input_size,
                first.hidden_size,
            ):
                raise ValueError(
                    "all models must have the same sizes; got "
                    f"(m={cell.input_size}, n={cell.hidden_size}) and "
                    f"(m={first.input_size}, n={first.hidden_size})"
                )
        n, m = first.hidden_size, first.input_size
        self.batch = len(models)
        self.hidden_size = n
        self.input_size = m
        self.output_size = models[0].output_size

        def stack(tensors):
            return nn.Parameter(torch.stack([t.detach().clone() for t in tensors]))

        self.weight_hh = stack([c.weight_hh for c in cells])
        self.weight_ih = stack([c.weight_ih for c in cells])
        self.bias = stack([c.bias for c in cells])
        self.readout_weight = stack([model.readout.weight for model in models])
        self.readout_bias = stack([model.readout.bias for model in models])
        self.parameters = [
            self.weight_hh,
            self.weight_ih,
            self.bias,
            self.readout_weight,
            self.readout_bias,
        ]
        self.optimizer = None if optimizer is None else optimizer(self.parameters)
        self.immediate_index = first.immediate_index
        dtype, device = self.weight_hh.dtype, self.weight_hh.device
        num_params = first.num_params
        if k is not None:
            check_int_range("k", k, 0, n, f"for a state of size {n}")
        needed = estimate_influence_memory(
            n,
            num_params,
            k or 0,
            batch=self.batch,
            dtype=dtype,
            immediate_size=self.immediate_index.shape[1],
        )
        check_memory(needed, device, f"{self.batch} influence matrices of shape (n, P)")
        self.influence = torch.zeros(
            self.batch, n, num_params, dtype=dtype, device=device
        )
        self._spare = torch.empty_like(self.influence)
        self.hidden = torch.zeros(self.batch, n, dtype=dtype, device=device)
        self.step_count = 0
        self.backend = backend
        check_non_negative("decay", decay)
        if decay > 1:
            raise ValueError(f"decay must be in [0, 1]; got decay={decay}")
        self.decay = float(decay)
        self.last_prediction: torch.Tensor | None = None

        self.k = k
        self.selectors: list[PathSelector] = []
        if k is not None:
            check_choice("selection", selection, SELECTIONS)
            if generators is not None and len(generators) != self.batch:
                raise ValueError(
                    f"generators must have one entry per model ({self.batch}); "
                    f"got {len(generators)}"
                )
            for b in range(self.batch):
                generator = None if generators is None else generators[b]
                self.selectors.append(
                    PathSelector(selection, k, n, keep_self, generator, device)
                )
            self.scale = self.decay * (n / k if rescale and k > 0 else 1.0)

    def _paths(self, jacobian: torch.Tensor) -> torch.Tensor:
        return torch.stack(
            [selector.select(jacobian[b]) for b, selector in enumerate(self.selectors)]
        )  # (B, n, k)

    @torch.no_grad()
    def step(
        self, x: torch.Tensor, y: torch.Tensor, learn: bool = True
    ) -> torch.Tensor:
        """Advance every stream one step, learn when ``learn``, return (B,) losses.

        Args:
          x: (B, m) inputs.
          y: (B, d) targets.
        """
        check_shape("x", x, (self.batch, self.input_size))
        check_shape("y", y, (self.batch, self.output_size))
        step = self.step_count
        if not (torch.isfinite(x).all() and torch.isfinite(y).all()):
            raise NonFiniteError(f"batched: data contains NaN or Inf at step {step}")
        previous = self.hidden
        pre = (
            torch.bmm(self.weight_hh, previous.unsqueeze(-1)).squeeze(-1)
            + torch.bmm(self.weight_ih, x.unsqueeze(-1)).squeeze(-1)
            + self.bias
        )
        hidden = torch.tanh(pre)  # (B, n)
        if not torch.isfinite(hidden).all():
            raise NonFiniteError(f"batched: state became NaN or Inf at step {step}")
        slope = 1 - hidden * hidden  # (B, n)
        jacobian = slope.unsqueeze(-1) * self.weight_hh  # (B, n, n)
        ones = torch.ones(self.batch, 1, dtype=x.dtype, device=x.device)
        source = torch.cat([previous, x, ones], dim=1)  # (B, n + m + 1)
        immediate = slope.unsqueeze(-1) * source.unsqueeze(1)  # (B, n, n + m + 1)

        if self.k is None:
            if self.decay != 1.0:
                jacobian = jacobian * self.decay
            exact_propagate(
                jacobian, self.influence, immediate, self.immediate_index, self._spare
            )
        else:
            index = self._paths(jacobian)
            values = torch.gather(jacobian, 2, index)
            if self.scale != 1.0:
                values = values * self.scale
            sparse_propagate(
                self.influence,
                values,
                index,
                immediate,
                self.immediate_index,
                out=self._spare,
                backend=self.backend,
            )
        self.influence, self._spare = self._spare, self.influence
        self.hidden = hidden
        self.step_count = step + 1

        prediction = (
            torch.bmm(self.readout_weight, hidden.unsqueeze(-1)).squeeze(-1)
            + self.readout_bias
        )
        self.last_prediction = prediction
        error = prediction - y  # (B, d)
        loss = (error * error).mean(dim=1)
        if not torch.isfinite(loss).all():
            streams = torch.nonzero(~torch.isfinite(loss)).flatten().tolist()
            raise NonFiniteError(
                f"batched: loss is NaN or Inf at step {step} in streams {streams}"
            )
        if not learn:
            return loss
        grad_prediction = (
            2 * error / self.output_size
        )  # ∂L/∂ŷ of the mean squared error
        grad_hidden = torch.bmm(
            grad_prediction.unsqueeze(1), self.readout_weight
        ).squeeze(1)  # (B, n)
        flat = torch.bmm(grad_hidden.unsqueeze(1), self.influence).squeeze(1)  # (B, P)
        if not torch.isfinite(flat).all():
            raise NonFiniteError(f"batched: gradient is NaN or Inf at step {step}")
        n, m = self.hidden_size, self.input_size
        grads = [
            flat[:, : n * n].view(self.batch, n, n),
            flat[:, n * n : n * n + n * m].view(self.batch, n, m),
            flat[:, n * n + n * m :],
            grad_prediction.unsqueeze(-1) * hidden.unsqueeze(1),
            grad_prediction,
        ]
        for parameter, grad in zip(self.parameters, grads):
            parameter.grad = (
                grad.clone() if parameter.grad is None else parameter.grad + grad
            )
        if self.optimizer is not None:
            with torch.enable_grad():
                self.optimizer.step()
            self.optimizer.zero_grad(set_to_none=True)
        return loss
