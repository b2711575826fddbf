"""Recurrent cells with the derivatives online learning needs."""

from ._base import Cell
from ._rnn import TanhRNNCell

__all__ = ["Cell", "TanhRNNCell"]
