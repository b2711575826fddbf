"""Registration of the LSTM, transformer, neural-data and baseline experiments.

These experiments have their own runners (``run_lstm_experiment``,
``run_transformer_experiment``, ``run_bci``, ``run_baselines``). This module wraps
each as a registered ``Experiment``: conditions per scale, a module-level unit
function that runs one (condition, seed), a summary of the stored units and the
claims it judges. Published figures are from A. Shalev-Merin, arXiv 2603.15195
(abstract), and the follow-up arXiv 2603.28750 (abstract).
"""

from __future__ import annotations

import math
import tempfile
from dataclasses import fields, replace
from pathlib import Path
from typing import Any

import numpy as np

from ..data import default_primate_dir
from ..tasks import make_task
from ._adaptation import AdaptationConfig, adaptation_streams, run_seed, summarize
from ._baselines import BaselinesConfig, _alignment_run, baseline_row
from ._bci import BCIConfig, r_squared
from ._claims import (
    RECOVERY_MARGIN,
    SCHEDULES,
    _seeds_note,
    adaptation_cost,
    recovery_estimate,
    run_adaptation_unit,
    summarize_adaptation,
)
from ._lstm import LSTM_LEARNERS, LSTMExperimentConfig
from ._metrics import mean_std
from ._registry import (
    AllIncrease,
    Claim,
    Estimate,
    Experiment,
    Measurement,
    Within,
    register_experiment,
)
from ._store import ResultStore
from ._transformer import (
    TransformerConfig,
    run_transformer_seed,
    summarize_transformer,
)

TINY = SCHEDULES["tiny"]


def _known_fields(config_cls: type, stored: dict[str, Any]) -> dict[str, Any]:
    """Keep the stored config fields that ``config_cls`` still has."""
    known = {item.name for item in fields(config_cls)}
    return {key: value for key, value in stored.items() if key in known}


def _ok_records(units: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        record for unit in units if unit["status"] == "ok" for record in unit["records"]
    ]


def _unit_failures(units: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        {"seed": unit["seed"], "error": unit["error"]}
        for unit in units
        if unit["status"] != "ok"
    ]


def _tiny_adaptation(config_cls: type, **overrides: Any):
    """Return ``config_cls`` with the ``tiny`` schedule's size and step counts."""
    values = {
        "hidden_size": TINY.hidden_size,
        "pretrain_iterations": TINY.pretrain_iterations,
        "pretrain_window": TINY.pretrain_window,
        "pretrain_batch": TINY.pretrain_batch,
        "warmup_steps": TINY.warmup_steps,
        "adapt_steps": TINY.adapt_steps,
    }
    values.update(overrides)
    return config_cls(**values)


# ---------------------------------------------------------------------- lstm

LSTM_CONDITION = "teacher"


def lstm_configs(scale: str) -> dict[str, LSTMExperimentConfig]:
    """Return the LSTM condition at ``scale``.

    ``default`` and ``quick`` are ``LSTMExperimentConfig()`` and
    ``LSTMExperimentConfig.quick()``, the settings of ``sparse-rtrl run lstm``
    with and without ``--quick``.
    """
    if scale == "tiny":
        config = _tiny_adaptation(LSTMExperimentConfig)
    elif scale == "quick":
        config = LSTMExperimentConfig.quick()
    else:
        config = LSTMExperimentConfig()
    return {LSTM_CONDITION: config}


def lstm_cost(config: AdaptationConfig) -> float:
    """Return the RNN-relative cost of an LSTM unit.

    Exact RTRL costs S² · P per step. The LSTM has S = 2n state rows and
    P ≈ 4n² parameters against S = n and P ≈ n² for the RNN, 16 times as much.
    """
    return 16 * adaptation_cost(config)


def _measure_lstm(summary: dict[str, Any]) -> Measurement:
    estimate = recovery_estimate(summary, LSTM_CONDITION, "sparse:k=4")
    n = summary["conditions"].get(LSTM_CONDITION, {}).get("hidden_size", "?")
    state = 2 * n if isinstance(n, int) else "?"
    note = f"n={n} LSTM units, {state} state rows, {_seeds_note(estimate)}"
    return Measurement((estimate,), note=note)


def _lstm_figures(summary, results, out_dir):
    from ..report._plots import plot_recovery_bars

    bars = {"readout": "readout", "k=0": "sparse:k=0", "k=4": "sparse:k=4"}
    path = Path(out_dir) / "lstm.png"
    plot_recovery_bars(summary, LSTM_CONDITION, bars, path, "LSTM: recovery")
    return [path]


def _adaptation_table(summary):
    from ..report._tables import adaptation_markdown

    return adaptation_markdown(summary)


LSTM_EXPERIMENT = Experiment(
    name="lstm",
    title="LSTM (lstm)",
    description="The adaptation experiment on the teacher task with an LSTM cell: "
    f"learners {', '.join(LSTM_LEARNERS)}. Sparse RTRL keeps k = 4 paths into each "
    "of the 2n state rows (h and c). Recovery is relative to the frozen model (0%) "
    "and exact RTRL (100%).",
    configs=lstm_configs,
    run=run_adaptation_unit,
    summarize=summarize_adaptation,
    claims=(
        Claim(
            "lstm-k4",
            "LSTM: k=4 paths per state row recovers as much as exact RTRL",
            "matches full RTRL",
            _measure_lstm,
            Within(100.0, RECOVERY_MARGIN),
        ),
    ),
    figures=_lstm_figures,
    table=_adaptation_table,
    cost=lstm_cost,
)


# --------------------------------------------------------------- transformer

TRANSFORMER_CONDITION = "teacher"
HALF = "heads=1/2"
THIRD = "heads=1/3"


def transformer_configs(scale: str) -> dict[str, TransformerConfig]:
    """Return the transformer condition at ``scale``.

    ``default`` and ``quick`` are ``TransformerConfig()`` and
    ``TransformerConfig.quick()``. ``tiny`` keeps 12 heads, so that 1/2, 1/3 and
    1/4 keep 6, 4 and 3 heads, at width 12 with one layer.
    """
    if scale == "tiny":
        config = TransformerConfig(
            width=12,
            heads=12,
            layers=1,
            context=6,
            seeds=2,
            pretrain_iterations=TINY.pretrain_iterations,
            pretrain_batch=TINY.pretrain_batch,
            warmup_steps=TINY.warmup_steps,
            adapt_steps=TINY.adapt_steps,
            analysis_every=10,
        )
    elif scale == "quick":
        config = TransformerConfig.quick()
    else:
        config = TransformerConfig()
    return {TRANSFORMER_CONDITION: config}


def run_transformer_unit(
    config: TransformerConfig,
    seed: int,
    cache_dir: str | None = None,
    progress: bool = False,
) -> list[dict[str, Any]]:
    """Run every kept fraction of heads and the frozen model on ``seed``.

    With ``cache_dir``, pretrained weights and finished (config, seed, learner)
    runs are kept there and reused.
    """
    config.validate()
    store = ResultStore(cache_dir) if cache_dir is not None else None
    records = run_transformer_seed(config, seed, store, progress)
    for record in records:
        # The unit's result file stores the config once.
        record.pop("config", None)
    return records


def transformer_cost(config: TransformerConfig) -> float:
    """Return a rough relative cost: steps × runs × layers × context × width²."""
    steps = config.warmup_steps + config.adapt_steps
    runs = len(config.labels())
    return float(steps * runs * config.layers * config.context * config.width**2)


def summarize_transformer_units(
    results: dict[str, list[dict[str, Any]]],
) -> dict[str, Any]:
    """Summarise each condition's stored units with ``summarize_transformer``.

    Returns ``{"conditions": {label: row}}``. Each row contains the condition's
    settings, ``learners`` (loss and recovery per kept fraction, with
    ``heads=1`` as 100% and ``frozen`` as 0%), ``heads`` (the per-head analysis
    of each seed's dense run) and ``unit_failures``.
    """
    conditions = {}
    for label, units in results.items():
        row: dict[str, Any] = {"learners": {}, "heads": {}, "unit_failures": []}
        if units:
            stored = _known_fields(TransformerConfig, units[0]["config"])
            config = TransformerConfig(**stored)
            row.update(
                task=config.task,
                width=config.width,
                heads_per_layer=config.heads,
                layers=config.layers,
                context=config.context,
                optimizer=config.optimizer,
                lr=config.lr,
                adapt_steps=config.adapt_steps,
            )
            summary = summarize_transformer(_ok_records(units), config.labels())
            row["learners"] = summary["learners"]
            row["heads"] = summary["heads"]
            row["unit_failures"] = _unit_failures(units)
        conditions[label] = row
    return {"conditions": conditions}


def _measure_half(summary: dict[str, Any]) -> Measurement:
    row = summary["conditions"].get(TRANSFORMER_CONDITION, {})
    entry = row.get("learners", {}).get(HALF, {})
    margins = [value - 100.0 for value in entry.get("recovery", [])]
    mean, std, count = mean_std(margins)
    estimate = Estimate("recovery − 100 at 1/2", mean, std, count)
    return Measurement((estimate,), note=_seeds_note(estimate))


def _measure_third(summary: dict[str, Any]) -> Measurement:
    estimate = recovery_estimate(summary, TRANSFORMER_CONDITION, THIRD, "1/3")
    return Measurement((estimate,), note=_seeds_note(estimate))


def _transformer_figures(summary, results, out_dir):
    from ..report._plots import plot_recovery_bars

    row = summary["conditions"].get(TRANSFORMER_CONDITION, {})
    bars = {
        label.removeprefix("heads="): label
        for label in row.get("learners", {})
        if label.startswith("heads=")
    }
    path = Path(out_dir) / "transformer.png"
    title = "transformer: recovery by kept fraction of heads"
    plot_recovery_bars(summary, TRANSFORMER_CONDITION, bars, path, title)
    return [path]


def transformer_markdown(summary: dict[str, Any]) -> str:
    """Return per condition the recovery table and the per-head analysis."""
    from ..report._tables import format_loss, format_mean_std, markdown_table

    blocks = []
    header = ["run", "adaptation loss", "recovery %", "ok / seeds", "ms per step"]
    for label, row in summary.get("conditions", {}).items():
        learners = row.get("learners", {})
        if not learners:
            blocks.append(f"**{label}**: no stored runs.")
            continue
        rows = []
        for name, entry in learners.items():
            step_ms = 1000 * entry["seconds_per_step"]
            rows.append(
                [
                    f"`{name}`",
                    format_loss(entry["loss_mean"], entry["loss_std"]),
                    format_mean_std(entry["recovery_mean"], entry["recovery_std"]),
                    f"{len(entry['loss'])} / {len(entry['seeds'])}",
                    "n/a" if not math.isfinite(step_ms) else f"{step_ms:.2f}",
                ]
            )
        settings = (
            f"task {row['task']}, width {row['width']}, {row['heads_per_layer']} "
            f"heads × {row['layers']} layers, context {row['context']}, "
            f"{row['optimizer']} lr={row['lr']:g}, {row['adapt_steps']} adaptation "
            "steps"
        )
        blocks.append(f"**{label}** ({settings})\n\n" + markdown_table(header, rows))
        blocks.append(_heads_markdown(row.get("heads", {})))
    return "\n\n".join(blocks)


def _heads_markdown(heads: dict[str, dict[str, Any]]) -> str:
    """Return the per-head analysis of the dense runs, averaged over seeds."""
    from ..report._tables import format_mean_std, markdown_table

    analysed = [entry for entry in heads.values() if entry.get("snapshots")]
    if not analysed:
        return "Per-head analysis: no snapshots stored."
    concentration = mean_std([entry["concentration"] for entry in analysed])
    stability = mean_std([entry["rank_stability"] for entry in analysed])
    share = 100 * np.mean([entry["norm_share"] for entry in analysed], axis=0)
    gain = np.mean([entry["gain"] for entry in analysed], axis=0)  # (L, H)
    text = (
        f"Per-head analysis of the dense run ({len(analysed)} seeds): "
        "concentration (largest share of a layer's gradient norm × H) "
        f"{format_mean_std(concentration[0], concentration[1], 2)}; rank stability "
        "(Spearman correlation of per-head gradient norms, first against second "
        f"half of the window) {format_mean_std(stability[0], stability[1], 2)}; "
        f"{int((gain > 0).sum())} of {gain.size} heads have a positive mean gain "
        "(their gradient lowers the loss of a lookahead step)."
    )
    header = ["layer", *(f"h{index}" for index in range(share.shape[1]))]
    rows = [
        [str(layer), *(f"{value:.1f}" for value in values)]
        for layer, values in enumerate(share)
    ]
    table = markdown_table(header, rows)
    return f"{text}\n\nShare of each head in its layer's gradient norm, %:\n\n{table}"


TRANSFORMER_EXPERIMENT = Experiment(
    name="transformer",
    title="Head-sparse gradient transport in a transformer (transformer)",
    description="A small causal transformer is pretrained on regime A of the teacher "
    "task and adapts online after the switch. Each run keeps a fraction (1, 1/2, "
    "1/3 or 1/4) of the heads of every layer in the backward pass, drawn again at "
    "every step. Recovery is relative to the frozen model (0%) and the dense "
    "reference that keeps every head (100%). The dense run also records which heads "
    "carry the gradient.",
    configs=transformer_configs,
    run=run_transformer_unit,
    summarize=summarize_transformer_units,
    claims=(
        Claim(
            "transformer-heads/half",
            "transformer: keeping 1/2 of the heads beats the dense reference "
            "(recovery above 100%)",
            "beats the dense reference",
            _measure_half,
            AllIncrease(),
        ),
        Claim(
            "transformer-heads/third",
            "transformer: keeping 1/3 of the heads is borderline (recovery near 100%)",
            "borderline",
            _measure_third,
            Within(100.0, RECOVERY_MARGIN),
        ),
    ),
    figures=_transformer_figures,
    table=transformer_markdown,
    cost=transformer_cost,
)


# ----------------------------------------------------------------------- bci

DEMO_FILE = "chewie_demo.mat"
BCI_LEARNERS = ("frozen", "readout", "sparse:k=0", "sparse:k=4", "exact")
# Bins of session B when BCIConfig.adapt_steps is 0 (all of session B), for the
# cost estimate only: the drifted Chewie recording has 1200.
BCI_SESSION_BINS = 1200


def bci_source() -> str:
    """Return ``demo`` when the Chewie recording is in ``default_primate_dir()``,
    else ``synthetic``."""
    return "demo" if (default_primate_dir() / DEMO_FILE).exists() else "synthetic"


def bci_configs(scale: str) -> dict[str, BCIConfig]:
    """Return the float32 and float64 conditions of the ``bci`` experiment.

    Both adapt with Adam. Session B is session A with simulated drift, from the
    Chewie recording when it is present and from synthetic sessions otherwise,
    so the conditions (and their unit keys) depend on the data folder at call
    time. ``default`` adapts over all of session B; ``quick`` and ``tiny`` set
    ``adapt_steps`` explicitly.
    """
    # NOTE: the demo file is looked up here and again on the worker, so a Ray
    # node without the file fails the unit when this machine has it.
    source = bci_source()
    if scale == "tiny":
        base = _tiny_adaptation(
            BCIConfig, source=source, drift=True, learners=BCI_LEARNERS
        )
    else:
        base = BCIConfig(
            source=source,
            drift=True,
            learners=BCI_LEARNERS,
            pretrain_iterations=150 if scale == "quick" else 300,
            adapt_steps=500 if scale == "quick" else 0,
        )
    return {
        "float32": replace(base, dtype="float32"),
        "float64": replace(base, dtype="float64"),
    }


def run_bci_unit(
    config: BCIConfig,
    seed: int,
    cache_dir: str | None = None,
    progress: bool = False,
) -> list[dict[str, Any]]:
    """Run every learner of ``config`` on ``seed`` and return one record per learner.

    Each record gets the R² of its decoded velocity over the adaptation window
    (``r2``) and over its last quarter (``r2_last_quarter``), and ``data``: the
    source, channels and bins of the two sessions. The per-bin predictions are
    dropped once R² is computed.
    """
    task = make_task(config.task, **config.task_options)
    config = config.resolved(task)
    config.validate()
    # Not run_adaptation_unit: the bci task has a target at every bin, so it has
    # no task mask to apply, and checking for one builds the task again (about
    # 1 s for synthetic sessions). Each bci model is pretrained by one unit only,
    # so run_seed may write the pretraining cache without ensure_pretrained.
    records = run_seed(config, seed, cache_dir, "adaptation", progress=progress)
    for record in records:
        record.pop("config", None)

    _, adapt = adaptation_streams(config, task, seed)
    target = adapt.targets.double().cpu().numpy()  # (T, 2)
    quarter = max(1, config.adapt_steps // 4)
    data = {
        "source": config.source,
        "demo": config.demo if config.source == "demo" else None,
        "drift": config.drift,
        "kind": task.sessions["B"].metadata.get("kind"),
        "channels": task.input_size,
        "bins_a": len(task.sessions["A"]),
        "bins_b": len(task.sessions["B"]),
        "adapt_steps": config.adapt_steps,
    }
    for record in records:
        record["data"] = data
        predictions = record.pop("predictions", None)
        if record.get("status") != "ok" or predictions is None:
            continue
        prediction = np.asarray(predictions)  # (T, 2)
        record["r2"] = r_squared(prediction, target)
        record["r2_last_quarter"] = r_squared(prediction[-quarter:], target[-quarter:])
    return records


def bci_cost(config: BCIConfig) -> float:
    steps = config.adapt_steps or BCI_SESSION_BINS
    return adaptation_cost(replace(config, adapt_steps=steps))


def describe_bci_data(data: dict[str, Any] | None) -> str:
    """Return one sentence naming the data a ``bci`` run used."""
    if not data:
        return "Data: no stored run."
    if data["source"] == "demo":
        origin = f"the {data['demo'].capitalize()} demo recording"
    else:
        origin = "synthetic sessions"
    if data["drift"]:
        second = "session A with simulated drift"
    else:
        second = "a second, undrifted session"
    return (
        f"Data: {origin}, {data['channels']} channels; session A {data['bins_a']} "
        f"bins, session B ({second}) {data['bins_b']} bins, of which "
        f"{data['adapt_steps']} adapt."
    )


def _data_note(data: dict[str, Any] | None) -> str:
    if not data:
        return "no data"
    origin = data["demo"].capitalize() if data["source"] == "demo" else "synthetic"
    return f"{origin}{' + drift' if data['drift'] else ''}"


def summarize_bci(results: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    """Summarise each condition like ``summarize_adaptation``, with data and R².

    Each condition row gets ``dtype``, ``data`` (from its first stored record),
    ``adapt_steps`` resolved from the data, and per learner ``r2_mean``,
    ``r2_std``, ``r2_last_quarter_mean`` and ``r2_last_quarter_std``. The summary
    gets ``data``, the first condition's data.
    """
    summary = summarize_adaptation(results)
    summary["data"] = None
    for label, units in results.items():
        row = summary["conditions"][label]
        if not units:
            continue
        row["dtype"] = units[0]["config"].get("dtype")
        records = [r for r in _ok_records(units) if r.get("status") == "ok"]
        data = next((r["data"] for r in records if "data" in r), None)
        row["data"] = data
        if data:
            row["adapt_steps"] = data["adapt_steps"]
            summary["data"] = summary["data"] or data
        for learner, entry in row["learners"].items():
            mine = [r for r in records if r["learner"] == learner]
            for name in ("r2", "r2_last_quarter"):
                values = [r[name] for r in mine if name in r]
                entry[f"{name}_mean"], entry[f"{name}_std"], _ = mean_std(values)
    return summary


def _bci_claim_measure(condition: str, learner: str):
    def measure(summary: dict[str, Any]) -> Measurement:
        estimate = recovery_estimate(summary, condition, learner)
        row = summary["conditions"].get(condition, {})
        data = _data_note(row.get("data"))
        note = f"{data}, Adam {condition}, {_seeds_note(estimate)}"
        return Measurement((estimate,), note=note)

    return measure


def _bci_figures(summary, results, out_dir):
    from ..report._plots import plot_recovery_bars

    bars = {"readout": "readout", "k=0": "sparse:k=0", "k=4": "sparse:k=4"}
    paths = []
    for condition in summary["conditions"]:
        path = Path(out_dir) / f"bci-{condition}.png"
        title = f"neural data ({_data_note(summary['data'])}), Adam {condition}"
        plot_recovery_bars(summary, condition, bars, path, title)
        paths.append(path)
    return paths


def bci_markdown(summary: dict[str, Any]) -> str:
    """Return the data sentence and, per condition, recovery and R² per learner."""
    from ..report._tables import format_loss, format_mean_std, markdown_table

    blocks = [describe_bci_data(summary.get("data"))]
    header = [
        "learner",
        "adaptation loss",
        "recovery % (vs frozen)",
        "recovery % (vs k=0)",
        "R² (all)",
        "R² (last quarter)",
        "ok / seeds",
    ]
    for label, row in summary.get("conditions", {}).items():
        learners = row.get("learners", {})
        if not learners:
            blocks.append(f"**{label}**: no stored runs.")
            continue
        rows = [
            [
                f"`{name}`",
                format_loss(entry["loss_mean"], entry["loss_std"]),
                format_mean_std(entry["recovery_mean"], entry["recovery_std"]),
                format_mean_std(
                    entry["recovery_vs_k0_mean"], entry["recovery_vs_k0_std"]
                ),
                format_mean_std(entry.get("r2_mean"), entry.get("r2_std"), 2),
                format_mean_std(
                    entry.get("r2_last_quarter_mean"),
                    entry.get("r2_last_quarter_std"),
                    2,
                ),
                f"{len(entry['loss'])} / {len(entry['seeds'])}",
            ]
            for name, entry in learners.items()
        ]
        settings = (
            f"n={row['hidden_size']}, {row['optimizer']} lr={row['lr']:g}, "
            f"{row.get('dtype')}, {row['adapt_steps']} adaptation steps"
        )
        blocks.append(f"**{label}** ({settings})\n\n" + markdown_table(header, rows))
    return "\n\n".join(blocks)


BCI_EXPERIMENT = Experiment(
    name="bci",
    title="Decoder adaptation on primate neural data (bci)",
    description="A recurrent velocity decoder (n = 64) is pretrained on session A "
    "of a motor-cortex recording and adapts online to session B, session A with "
    "simulated drift (lost and swapped channels, gain, baseline and "
    "preferred-direction changes). The data are the Chewie demo recording when "
    f"`{DEMO_FILE}` is in the primate data folder (`$SPARSE_RTRL_PRIMATE_DIR`) and "
    "synthetic sessions otherwise; the table below names the data of the stored "
    "runs. Every learner adapts with Adam, once in float32 and once in float64.",
    configs=bci_configs,
    run=run_bci_unit,
    summarize=summarize_bci,
    claims=(
        Claim(
            "neural-drift-k4",
            "primate neural data, cross-session drift: k=4 recovers most of exact "
            "RTRL (Adam, float32)",
            "80 ± 11% recovery",
            _bci_claim_measure("float32", "sparse:k=4"),
            Within(80.0, RECOVERY_MARGIN),
        ),
        Claim(
            "neural-drift-k0",
            "primate neural data, cross-session drift: k=0 matches exact RTRL with "
            "Adam in float64 (arXiv 2603.28750)",
            "matches full RTRL",
            _bci_claim_measure("float64", "sparse:k=0"),
            Within(100.0, RECOVERY_MARGIN),
        ),
    ),
    figures=_bci_figures,
    table=bci_markdown,
    cost=bci_cost,
)


# ----------------------------------------------------------------- baselines


def baselines_configs(scale: str) -> dict[str, BaselinesConfig]:
    """Return one condition per hidden size, each a one-size ``BaselinesConfig``.

    ``default`` and ``quick`` split ``BaselinesConfig()`` and
    ``BaselinesConfig.quick()`` (n = 64 and 256) by size.
    """
    if scale == "tiny":
        base = BaselinesConfig(
            sizes=(8, 16),
            adapt_steps=(TINY.adapt_steps, TINY.adapt_steps),
            alignment_steps=(8, 8),
            seeds=2,
            pretrain_iterations=TINY.pretrain_iterations,
            pretrain_window=TINY.pretrain_window,
            pretrain_batch=TINY.pretrain_batch,
            warmup_steps=TINY.warmup_steps,
        )
    elif scale == "quick":
        base = BaselinesConfig.quick()
    else:
        base = BaselinesConfig()
    return {
        f"n={size}": replace(
            base,
            sizes=(size,),
            adapt_steps=(base.adapt_steps[index],),
            alignment_steps=(base.alignment_steps[index],),
        )
        for index, size in enumerate(base.sizes)
    }


def run_baselines_unit(
    config: BaselinesConfig,
    seed: int,
    cache_dir: str | None = None,
    progress: bool = False,
) -> list[dict[str, Any]]:
    """Run every learner of a one-size ``config`` on ``seed``.

    Each learner's adaptation record gets ``alignment`` (mean cosine and median
    norm ratio to exact RTRL, trace bytes) when ``seed`` is among the first
    ``alignment_seeds`` seeds, else None.
    """
    config.validate()
    if len(config.sizes) != 1:
        raise ValueError(
            f"a baselines unit runs one size; got sizes={list(config.sizes)}"
        )
    adaptation = config.adaptation_config(0)
    records = run_adaptation_unit(adaptation, seed, cache_dir, progress)

    alignments: dict[str, dict[str, Any]] = {}
    if seed - config.first_seed < config.alignment_seeds:
        labels = [spec.label for spec in adaptation.learner_specs()]
        steps = config.alignment_steps[0]
        if cache_dir is not None:
            alignments = _alignment_run(
                adaptation, seed, steps, Path(cache_dir), labels, progress
            )
        else:
            with tempfile.TemporaryDirectory() as root:
                alignments = _alignment_run(
                    adaptation, seed, steps, Path(root), labels, progress
                )
    for record in records:
        record["alignment"] = alignments.get(record["learner"])
    return records


def baselines_cost(config: BaselinesConfig) -> float:
    adaptation = config.adaptation_config(0)
    steps = adaptation.warmup_steps + adaptation.adapt_steps
    return adaptation_cost(adaptation) * (1 + config.alignment_steps[0] / steps)


def summarize_baselines(results: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    """Summarise the stored units into ``run_baselines``'s result layout.

    Returns ``{"sizes": {"<n>": {"<learner>": row}}, "unit_failures": {...}}``,
    where each row is ``baseline_row``'s, so ``format_baselines_table`` prints it.
    """
    sizes: dict[str, dict[str, Any]] = {}
    failures: dict[str, list[dict[str, Any]]] = {}
    for label, units in results.items():
        if not units:
            continue
        config = BaselinesConfig(**_known_fields(BaselinesConfig, units[0]["config"]))
        adaptation = config.adaptation_config(0)
        labels = [spec.label for spec in adaptation.learner_specs()]
        records = _ok_records(units)
        learners = summarize(records, labels, full="exact")["learners"]
        sizes[str(config.sizes[0])] = {
            learner: baseline_row(
                learners[learner],
                [
                    record["alignment"]
                    for record in records
                    if record["learner"] == learner and record.get("alignment")
                ],
            )
            for learner in labels
        }
        failures[label] = _unit_failures(units)
    return {"sizes": sizes, "unit_failures": failures}


def _baselines_table(summary: dict[str, Any]) -> str:
    from ._baselines import format_baselines_table

    if not summary["sizes"]:
        return "No stored runs."
    note = (
        "Cosine and norm ratio compare each learner's gradient with exact RTRL's "
        "along the learner's own trajectory; trace memory is what the learner keeps "
        "between steps besides the model. Both come from the alignment seeds only."
    )
    return f"{note}\n\n{format_baselines_table(summary)}"


BASELINES_EXPERIMENT = Experiment(
    name="baselines",
    title="Prior-work baselines (baselines)",
    description="Every learner adapts on the teacher task at n = 64 and n = 256: "
    "the controls (frozen, readout, k = 0), sparse RTRL with k = 4, exact RTRL, "
    "SnAp-1, SnAp-2, UORO, KF-RTRL, RFLO (symmetric and random feedback), e-prop "
    "and truncated BPTT. The table gives recovery, the cosine of each gradient to "
    "exact RTRL's, time per step and trace memory. No published claim is judged "
    "here.",
    configs=baselines_configs,
    run=run_baselines_unit,
    summarize=summarize_baselines,
    table=_baselines_table,
    cost=baselines_cost,
)


MORE_EXPERIMENTS = (
    LSTM_EXPERIMENT,
    TRANSFORMER_EXPERIMENT,
    BCI_EXPERIMENT,
    BASELINES_EXPERIMENT,
)

for _experiment in MORE_EXPERIMENTS:
    register_experiment(_experiment)
