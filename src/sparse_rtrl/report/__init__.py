"""Tables and figures."""

from ._figures import plot_switch_curves, smooth

__all__ = ["plot_switch_curves", "smooth"]
