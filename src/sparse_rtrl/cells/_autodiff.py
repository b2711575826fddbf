"""A cell built from any step function, with derivatives from ``torch.func``."""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Mapping, Sequence

import torch
from torch import nn
from torch.autograd import forward_ad
from torch.func import functional_call, jacfwd, jacrev, vmap

from .._validation import check_choice, check_int_range
from ._base import Cell

MODES = ("auto", "reverse", "forward")

StepFunction = Callable[..., torch.Tensor]


class FunctionalCell(Cell):
    """A cell ``s_t = f(s_{t-1}, x_t, θ)`` whose ``J_t`` and ``I_t`` come from autodiff.

        J_t = ∂f/∂s_{t-1}    (S, S)        I_t = ∂f/∂θ    (S, P), stored dense

    ``f`` takes one unbatched state (S,), one input (m,) and the parameters, and
    returns the next state (S,). ``forward`` maps ``f`` over batch axes with
    ``torch.func.vmap``, so ``f`` must be free of data-dependent Python control flow.
    The immediate term is dense: every row lists all P columns, so ``r = P``.

    Both Jacobians come from one ``torch.func`` call over ``(s_{t-1}, θ)``. Reverse
    mode (``jacrev``) runs one vector-Jacobian product per output row (S of them),
    forward mode (``jacfwd``) one Jacobian-vector product per input column (S + P).
    ``mode="auto"`` takes forward mode only when ``P <= S``, where it needs at most
    2S products and stores no graph, and reverse mode otherwise. Recurrent cells
    have P ≫ S because their weights grow with S². In ``benchmarks/bench_cells.py``
    on a CPU, forward mode merely tied at P = 21 S (tanh RNN, n = 16) and was 3 to
    120 times slower for larger P / S.

    Args:
      function: ``f(state (S,), x (m,), params) -> (S,)``. ``params`` is passed in
        the form given in ``parameters`` (a dict of tensors or a tuple of tensors).
      parameters: initial parameter tensors, as a dict (names become the
        parameter names) or a sequence. They are copied into ``nn.Parameter``
        objects in the given order, which is the order of the influence columns.
      input_size: m, size of ``x_t``.
      state_size: S, size of the state.
      hidden_size: rows ``0 .. hidden_size - 1`` of the state form the ``h`` fed to
        the readout; ``state_size`` when omitted. ``state_size`` must be a multiple
        of it.
      mode: ``auto``, ``reverse`` or ``forward``, the ``torch.func`` mode.

    Raises:
      ValueError: a size outside its range, no parameters, parameters that are not
        floating point or do not share one dtype and device, or an ``f`` whose
        output does not have shape (S,).
    """

    def __init__(
        self,
        function: StepFunction,
        parameters: Mapping[str, torch.Tensor] | Sequence[torch.Tensor],
        input_size: int,
        state_size: int,
        hidden_size: int | None = None,
        mode: str = "auto",
    ):
        super().__init__()
        self._function = function
        self.module: nn.Module | None = None
        self._as_dict = isinstance(parameters, Mapping)
        if self._as_dict:
            items = list(parameters.items())
        else:
            items = [(str(index), t) for index, t in enumerate(parameters)]
        for name, tensor in items:
            if not tensor.is_floating_point():
                raise ValueError(
                    f"parameter {name!r} must be floating point; got {tensor.dtype}"
                )
        pairs = [(name, nn.Parameter(t.detach().clone())) for name, t in items]
        # ParameterDict.update sorts the keys of a plain dict (torch 2.13), and a list
        # of pairs keeps the given order, which is the influence-column order.
        self.params = nn.ParameterDict(pairs)
        self._setup(input_size, state_size, hidden_size, mode)

    @classmethod
    def from_module(
        cls,
        module: nn.Module,
        input_size: int,
        state_size: int,
        hidden_size: int | None = None,
        mode: str = "auto",
    ) -> FunctionalCell:
        """Wrap an ``nn.Module`` whose ``forward(state (S,), x (m,))`` returns (S,).

        The module's parameters, in ``module.parameters()`` order, are the cell's
        parameters; the module is called through ``torch.func.functional_call``.
        The module is used as given, not copied.
        """
        cell = cls.__new__(cls)
        Cell.__init__(cell)
        cell._function = None
        cell._as_dict = True
        cell.module = module
        cell._setup(input_size, state_size, hidden_size, mode)
        return cell

    def _setup(self, input_size, state_size, hidden_size, mode) -> None:
        check_int_range("input_size", input_size, 1, 10**6)
        check_int_range("state_size", state_size, 1, 10**5)
        hidden_size = state_size if hidden_size is None else hidden_size
        check_int_range(
            "hidden_size", hidden_size, 1, state_size, f"for state_size={state_size}"
        )
        if state_size % hidden_size:
            raise ValueError(
                f"state_size must be a multiple of hidden_size; got "
                f"state_size={state_size}, hidden_size={hidden_size}"
            )
        check_choice("mode", mode, MODES)
        self.input_size = input_size
        self.state_size = state_size
        self.hidden_size = hidden_size
        self.state_multiplier = state_size // hidden_size

        owner = self.module if self.module is not None else self.params
        self._names = [name for name, _ in owner.named_parameters()]
        tensors = list(owner.parameters())
        if not tensors:
            raise ValueError("a FunctionalCell needs at least one parameter; got none")
        first = tensors[0]
        for name, tensor in zip(self._names, tensors):
            if not tensor.is_floating_point():
                raise ValueError(
                    f"parameter {name!r} must be floating point; got {tensor.dtype}"
                )
            if tensor.dtype != first.dtype or tensor.device != first.device:
                raise ValueError(
                    f"parameters must share one dtype and device; parameter {name!r} "
                    f"is {tensor.dtype} on {tensor.device}, the first is "
                    f"{first.dtype} on {first.device}"
                )
        if mode == "auto":
            mode = "forward" if self.num_params <= state_size else "reverse"
        self.mode = mode
        if mode == "forward":
            _load_forward_ad()
        self.register_buffer(
            "_columns", torch.arange(self.num_params, device=first.device), False
        )

        # One call on zeros checks the output shape before any run depends on it.
        zero_state = torch.zeros(state_size, dtype=first.dtype, device=first.device)
        zero_input = torch.zeros(input_size, dtype=first.dtype, device=first.device)
        try:
            with torch.no_grad():
                probe = self._evaluate(
                    zero_state, zero_input, tuple(t.detach() for t in tensors)
                )
        except RuntimeError as error:
            raise ValueError(
                f"the step function failed on a state of shape ({state_size},) and "
                f"an input of shape ({input_size},); check state_size and "
                f"input_size against the parameters: {error}"
            ) from error
        if not isinstance(probe, torch.Tensor) or probe.shape != (state_size,):
            got = tuple(probe.shape) if isinstance(probe, torch.Tensor) else type(probe)
            raise ValueError(
                f"the step function must return a state of shape ({state_size},); "
                f"got {got}"
            )

    def _evaluate(self, state, x, tensors: tuple[torch.Tensor, ...]) -> torch.Tensor:
        if self.module is not None:
            return functional_call(
                self.module, dict(zip(self._names, tensors)), (state, x)
            )
        params = dict(zip(self._names, tensors)) if self._as_dict else tensors
        return self._function(state, x, params)

    @property
    def immediate_index(self) -> torch.Tensor:
        return self._columns.expand(self.state_size, -1)  # (S, P)

    def forward(self, state, x):
        tensors = tuple(self.parameters())
        if state.dim() == 1:
            return self._evaluate(state, x, tensors)
        batch_shape = state.shape[:-1]
        flat_state = state.reshape(-1, self.state_size)  # (B, S)
        flat_x = x.reshape(-1, self.input_size)  # (B, m)
        batched = vmap(self._evaluate, in_dims=(0, 0, None))
        return batched(flat_state, flat_x, tensors).reshape(*batch_shape, -1)

    def step_with_jacobians(self, state, x):
        tensors = tuple(p.detach() for p in self.parameters())

        def step(s, params):
            new_state = self._evaluate(s, x, params)
            return new_state, new_state

        transform = jacrev if self.mode == "reverse" else jacfwd
        with torch.no_grad():
            (jacobian, parameter_jacobians), new_state = transform(
                step, argnums=(0, 1), has_aux=True
            )(state.detach(), tensors)
        immediate = torch.cat(
            [j.reshape(self.state_size, -1) for j in parameter_jacobians], dim=1
        )  # (S, P)
        return new_state, jacobian, immediate


def _load_forward_ad() -> None:
    # torch 2.13 loads its forward-mode decompositions on the first make_dual and
    # warns there that torch.jit.script is deprecated. The warning concerns torch's
    # own code, so it is silenced once here instead of in every jacfwd call.
    with warnings.catch_warnings():
        warnings.filterwarnings(
            "ignore", message=".*torch.jit.script.*", category=DeprecationWarning
        )
        with forward_ad.dual_level():
            forward_ad.make_dual(torch.zeros(1), torch.zeros(1))


def gru_step(
    state: torch.Tensor, x: torch.Tensor, params: Mapping[str, torch.Tensor]
) -> torch.Tensor:
    """Compute one GRU step on unbatched vectors, gates in the order reset, update, new.

        r = σ(W_r h + U_r x + b_r)    z = σ(W_z h + U_z x + b_z)
        ĥ = tanh(U_n x + b_n + r ⊙ (W_n h))    h_t = (1 - z) ⊙ ĥ + z ⊙ h

    Args:
      state: (n,) ``h_{t-1}``.
      x: (m,) ``x_t``.
      params: ``weight_hh`` (3n, n), ``weight_ih`` (3n, m), ``bias`` (3n,).
    """
    recurrent = params["weight_hh"] @ state  # (3n,)
    drive = params["weight_ih"] @ x + params["bias"]  # (3n,)
    rec_r, rec_z, rec_n = recurrent.chunk(3)
    drive_r, drive_z, drive_n = drive.chunk(3)
    reset = torch.sigmoid(rec_r + drive_r)
    update = torch.sigmoid(rec_z + drive_z)
    candidate = torch.tanh(drive_n + reset * rec_n)
    return (1 - update) * candidate + update * state


def gru_cell(
    input_size: int,
    hidden_size: int,
    gain: float = 1.0,
    generator: torch.Generator | None = None,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str = "cpu",
    mode: str = "auto",
) -> FunctionalCell:
    """Build a GRU as a ``FunctionalCell`` of ``gru_step``.

    Parameters in influence-column order: ``weight_hh`` (3n, n) with entries
    ~ N(0, gain²/n), ``weight_ih`` (3n, m) ~ N(0, 1/m), ``bias`` (3n,) zero, so
    ``P = 3n(n + m + 1)``.

    Args:
      input_size: m, size of ``x_t``.
      hidden_size: n, number of units (the state is h, S = n).
      gain: scale of the initial recurrent weights.
      generator: source of the initial weights.
      dtype: float32 (default) or float64.
      device: any torch device; CPU by default.
      mode: ``torch.func`` mode, see ``FunctionalCell``.
    """
    check_int_range("input_size", input_size, 1, 10**6)
    check_int_range("hidden_size", hidden_size, 1, 10**5)
    n, m = hidden_size, input_size
    w = torch.randn(3 * n, n, generator=generator, dtype=torch.float64) * gain
    u = torch.randn(3 * n, m, generator=generator, dtype=torch.float64)
    params = {
        "weight_hh": w / math.sqrt(n),
        "weight_ih": u / math.sqrt(m),
        "bias": torch.zeros(3 * n, dtype=torch.float64),
    }
    params = {name: t.to(dtype=dtype, device=device) for name, t in params.items()}
    return FunctionalCell(gru_step, params, m, n, mode=mode)
