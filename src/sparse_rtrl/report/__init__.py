"""Tables and figures."""

from ._figures import plot_switch_curves, smooth
from ._report import build_report, claim_rows, judge

__all__ = ["build_report", "claim_rows", "judge", "plot_switch_curves", "smooth"]
