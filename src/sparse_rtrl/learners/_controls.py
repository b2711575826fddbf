"""Control learners that bound the adaptation experiment from below."""

from __future__ import annotations

import torch

from ._base import Learner


class Frozen(Learner):
    """No learning: the pretrained model runs unchanged (``L_frozen``)."""

    name = "frozen"
    trains_cell = False
    trains_readout = False

    def _advance(self, x):
        with torch.no_grad():
            return self.cell(self.state.hidden, x)


class ReadoutOnly(Learner):
    """Only the readout learns, with its exact gradient; the cell stays fixed."""

    name = "readout"
    trains_cell = False

    def _advance(self, x):
        with torch.no_grad():
            return self.cell(self.state.hidden, x)
