"""The ``bci`` task built from plain options, so configs can name it by string."""

from __future__ import annotations

from pathlib import Path

from .._validation import check_choice
from ..data import DriftConfig, load_matrices, load_nwb
from ._bci import BCITask

SOURCES = ("synthetic", "demo", "files")
MATRIX_SUFFIXES = (".mat", ".npz", ".h5", ".hdf5")


class BCIStreams(BCITask):
    """``BCITask`` whose BPTT batches start at random bins.

    Pretraining needs windows from all of session A, while the adaptation streams
    start at bin 0 so that the adaptation window is the beginning of session B.
    """

    def sample_batch(self, regime, steps, batch, generator):
        fixed = self.random_start
        self.random_start = True
        try:
            return [self.sample(regime, steps, generator) for _ in range(batch)]
        finally:
            self.random_start = fixed


def _load_session(path: str, bin_width: float, counts_key: str, velocity_key: str):
    suffix = Path(path).suffix.lower()
    if suffix == ".nwb":
        return load_nwb(path, bin_width=bin_width)
    if suffix in MATRIX_SUFFIXES:
        return load_matrices(path, counts_key, velocity_key, bin_width)
    raise ValueError(
        f"session file must end in .nwb or one of {list(MATRIX_SUFFIXES)}; got {path}"
    )


def make_bci_task(
    source: str = "synthetic",
    session_a: str | None = None,
    session_b: str | None = None,
    counts_key: str = "counts",
    velocity_key: str = "velocity",
    bin_width: float = 0.02,
    demo: str = "chewie",
    demo_path: str | None = None,
    drift: bool = True,
    data_seed: int = 0,
    n_channels: int = 64,
    duration_s: float = 120.0,
    **drift_options,
) -> BCIStreams:
    """Build the ``bci`` task from recordings, the demo files or synthetic data.

    Args:
      source: ``synthetic`` (two NWB sessions generated and read back),
        ``demo`` (a DAD demo recording, ``demo`` names it) or ``files``
        (``session_a`` and ``session_b``, NWB or count/velocity matrices).
      session_a: file of the pretraining session, for ``files``.
      session_b: file of the new session, for ``files``.
      counts_key: key of the (T, C) count matrix in a matrix file.
      velocity_key: key of the (T, 2) velocity matrix in a matrix file.
      bin_width: bin width in seconds (NWB binning, and the label of matrices).
      demo: ``chewie`` or ``mihi``, for ``demo``.
      demo_path: the demo file or its folder; default the shared data folder.
      drift: for ``demo``, derive session B by drifting part A (True) or use the
        recording's second part (False); for ``synthetic``, False generates
        session B without drift.
      data_seed: seed of the synthetic data and of the drift draw.
      n_channels: channels of the synthetic sessions.
      duration_s: length of each synthetic session, in seconds.
      **drift_options: ``DriftConfig`` fields (``drop_fraction``,
        ``swap_fraction``, ``gain_std``, ``baseline_std``, ``rotation_deg``,
        ``drop_mode``) overriding the default drift.
    """
    check_choice("source", source, SOURCES)
    unknown = set(drift_options) - set(DriftConfig.__dataclass_fields__)
    if unknown:
        raise ValueError(
            f"unknown bci task options {sorted(unknown)}; drift options are "
            f"{sorted(DriftConfig.__dataclass_fields__)}"
        )
    drift_config = DriftConfig(**drift_options)
    if source == "synthetic":
        none = DriftConfig(0.0, "silence", 0.0, 0.0, 0.0, 0.0)
        return BCIStreams.synthetic(
            data_seed,
            drift=drift_config if drift else none,
            n_channels=n_channels,
            duration_s=duration_s,
            bin_width=bin_width,
        )
    if source == "demo":
        return BCIStreams.from_demo(
            demo_path,
            name=demo,
            drift=drift_config if drift else None,
            seed=data_seed,
        )
    if session_a is None or session_b is None:
        raise ValueError(
            "source='files' needs session_a and session_b; got "
            f"session_a={session_a!r}, session_b={session_b!r}"
        )
    first = _load_session(session_a, bin_width, counts_key, velocity_key)
    second = _load_session(session_b, bin_width, counts_key, velocity_key)
    by_index = first.metadata.get("channel_identity") == "index"
    return BCIStreams.from_sessions(first, second, by_index=by_index)


make_bci_task.name = "bci"
