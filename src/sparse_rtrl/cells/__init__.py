"""Recurrent cells with the derivatives online learning needs."""

from ._autodiff import FunctionalCell, gru_cell, gru_step
from ._base import Cell
from ._lstm import LSTMCell
from ._rnn import TanhRNNCell

CELLS: dict[str, type[Cell]] = {"rnn": TanhRNNCell}


def register_cell(name: str, cls: type[Cell]) -> type[Cell]:
    """Add a cell class to ``CELLS``; its constructor must accept
    ``(input_size, hidden_size, generator=, dtype=, device=)``."""
    CELLS[name] = cls
    return cls


register_cell("lstm", LSTMCell)
# A factory, not a class: CELLS entries only need the constructor signature.
register_cell("gru", gru_cell)

__all__ = [
    "CELLS",
    "Cell",
    "FunctionalCell",
    "LSTMCell",
    "TanhRNNCell",
    "gru_cell",
    "gru_step",
    "register_cell",
]
