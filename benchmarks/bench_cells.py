"""Time the autodiff cell against the hand-derived RNN and LSTM.

For each cell and hidden size n it measures the seconds per ``step_with_jacobians``
call and per exact RTRL step (``step_with_jacobians`` plus ``M_t = J_t M_{t-1} +
I_t``), prints a table and writes the rows as JSON.

    python benchmarks/bench_cells.py --sizes 16 64 128 --out bench_cells.json
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from datetime import datetime, timezone

import torch

from sparse_rtrl.cells import FunctionalCell, LSTMCell, TanhRNNCell, gru_cell
from sparse_rtrl.learners import ExactRTRL, RecurrentModel


def tanh_rnn_step(state, x, params):
    return torch.tanh(
        params["weight_hh"] @ state + params["weight_ih"] @ x + params["bias"]
    )


def lstm_step(state, x, params):
    n = params["weight_hh"].shape[1]
    h, c = state[:n], state[n:]
    z = params["weight_hh"] @ h + params["weight_ih"] @ x + params["bias"]
    i, f, g, o = z.split(n)
    c_new = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
    return torch.cat([torch.sigmoid(o) * torch.tanh(c_new), c_new])


def as_functional(cell, function, mode):
    params = {name: p.detach() for name, p in cell.named_parameters()}
    return FunctionalCell(
        function, params, cell.input_size, cell.state_size, cell.hidden_size, mode
    )


# Forward mode pushes S + P tangents through ops on P-sized weights, so its
# intermediates have about (S + P)·P entries. Larger cases are skipped.
FORWARD_MODE_MAX_ENTRIES = 5 * 10**7


def build_cells(n: int, m: int, dtype: torch.dtype):
    """Return (label, derivation, mode, cell) for every cell measured at size n."""
    g = torch.Generator().manual_seed(n)
    rnn = TanhRNNCell(m, n, generator=g, dtype=dtype)
    lstm = LSTMCell(m, n, generator=g, dtype=dtype)
    cells = [
        ("rnn", "hand", "-", rnn),
        ("lstm", "hand", "-", lstm),
    ]
    for mode in ("reverse", "forward"):
        gru = gru_cell(m, n, generator=g, dtype=dtype, mode=mode)
        cells += [
            ("rnn", "autodiff", mode, as_functional(rnn, tanh_rnn_step, mode)),
            ("lstm", "autodiff", mode, as_functional(lstm, lstm_step, mode)),
            ("gru", "autodiff", mode, gru),
        ]
    kept = []
    for entry in cells:
        cell = entry[3]
        entries = (cell.state_size + cell.num_params) * cell.num_params
        if entry[2] != "forward" or entries <= FORWARD_MODE_MAX_ENTRIES:
            kept.append(entry)
    return kept


def seconds_per_call(function, min_seconds: float, min_calls: int = 3) -> float:
    """Median seconds of one call, over at least ``min_calls`` and ``min_seconds``."""
    function()  # the first call pays one-time costs (allocation, decompositions)
    times = []
    start = time.perf_counter()
    while len(times) < min_calls or time.perf_counter() - start < min_seconds:
        begin = time.perf_counter()
        function()
        times.append(time.perf_counter() - begin)
    return statistics.median(times)


def measure(n: int, m: int, dtype: torch.dtype, min_seconds: float, rtrl: bool):
    rows = []
    g = torch.Generator().manual_seed(0)
    x = torch.randn(m, generator=g, dtype=torch.float64).to(dtype)
    for label, derivation, mode, cell in build_cells(n, m, dtype):
        state = 0.1 * torch.randn(cell.state_size, generator=g, dtype=torch.float64)
        state = state.to(dtype)
        jacobians = seconds_per_call(
            lambda cell=cell, state=state: cell.step_with_jacobians(state, x),
            min_seconds,
        )
        exact = float("nan")
        # Forward mode is measured for the Jacobians only; RTRL's propagation after
        # them is the same code for both modes.
        if rtrl and mode != "forward":
            learner = ExactRTRL(RecurrentModel(cell, 1))
            exact = seconds_per_call(
                lambda learner=learner: learner.step(x), min_seconds
            )
        rows.append(
            {
                "cell": label,
                "derivation": derivation,
                "mode": mode,
                "n": n,
                "m": m,
                "S": cell.state_size,
                "P": cell.num_params,
                "jacobians_ms": 1e3 * jacobians,
                "exact_rtrl_ms": 1e3 * exact,
            }
        )
    return rows


def format_rows(rows) -> str:
    header = (
        f"{'cell':<6}{'derivation':<11}{'mode':<9}{'n':>5}{'S':>6}{'P':>8}"
        f"{'jacobians ms':>14}{'exact RTRL ms':>15}"
    )
    lines = [header, "-" * len(header)]
    for row in rows:
        exact = row["exact_rtrl_ms"]
        exact_text = "-" if exact != exact else f"{exact:.3f}"
        lines.append(
            f"{row['cell']:<6}{row['derivation']:<11}{row['mode']:<9}{row['n']:>5}"
            f"{row['S']:>6}{row['P']:>8}{row['jacobians_ms']:>14.3f}{exact_text:>15}"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[16, 64, 128])
    parser.add_argument("--input-size", type=int, default=4, help="m")
    parser.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    parser.add_argument(
        "--min-seconds", type=float, default=0.5, help="timing budget per cell"
    )
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--no-rtrl", action="store_true", help="skip RTRL timing")
    parser.add_argument("--out", default="bench_cells.json", help="JSON output path")
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    dtype = getattr(torch, args.dtype)
    rows = []
    for n in args.sizes:
        rows += measure(n, args.input_size, dtype, args.min_seconds, not args.no_rtrl)
    print(format_rows(rows))
    result = {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": platform.platform(),
        "processor": platform.processor(),
        "torch": torch.__version__,
        "threads": args.threads,
        "dtype": args.dtype,
        "rows": rows,
    }
    with open(args.out, "w") as handle:
        json.dump(result, handle, indent=1)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
