"""Recurrent cells with the derivatives online learning needs."""

from ._base import Cell
from ._rnn import TanhRNNCell

CELLS: dict[str, type[Cell]] = {"rnn": TanhRNNCell}


def register_cell(name: str, cls: type[Cell]) -> type[Cell]:
    """Add a cell class to ``CELLS``; its constructor must accept
    ``(input_size, hidden_size, generator=, dtype=, device=)``."""
    CELLS[name] = cls
    return cls


__all__ = ["CELLS", "Cell", "TanhRNNCell", "register_cell"]
