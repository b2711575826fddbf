"""Invalid arguments and non-finite values give clear errors."""

import json

import pytest
import torch
from helpers import make_rnn_model

from sparse_rtrl import NonFiniteError
from sparse_rtrl.cells import TanhRNNCell
from sparse_rtrl.experiments import AdaptationConfig, preflight, run_adaptation
from sparse_rtrl.learners import (
    LEARNERS,
    ExactRTRL,
    Learner,
    RecurrentModel,
    SparseRTRL,
)


@pytest.mark.parametrize("k", [-1, 9, 70])
def test_sparse_rejects_k_out_of_range(k):
    model = make_rnn_model(8, 2, 1, seed=0)
    with pytest.raises(ValueError, match=rf"k must be in \[0, 8\]; got k={k}"):
        SparseRTRL(model, k=k)


def test_sparse_rejects_unknown_selection():
    model = make_rnn_model(8, 2, 1, seed=0)
    with pytest.raises(ValueError, match="selection must be one of"):
        SparseRTRL(model, k=2, selection="largest")


def test_step_rejects_mismatched_input_size():
    learner = ExactRTRL(make_rnn_model(4, 3, 1, seed=0))
    with pytest.raises(ValueError, match=r"x must have shape \(3\); got shape \(2,\)"):
        learner.step(torch.zeros(2, dtype=torch.float64), torch.zeros(1))


def test_step_rejects_mismatched_target_size():
    learner = ExactRTRL(make_rnn_model(4, 3, 2, seed=0))
    x = torch.zeros(3, dtype=torch.float64)
    with pytest.raises(ValueError, match=r"y must have shape \(2\)"):
        learner.step(x, torch.zeros(3, dtype=torch.float64))


def test_cell_rejects_invalid_sizes():
    with pytest.raises(ValueError, match="hidden_size must be in"):
        TanhRNNCell(2, 0)


@pytest.mark.parametrize("where", ["x", "y"])
def test_nan_in_data_names_learner_and_step(where):
    learner = SparseRTRL(make_rnn_model(4, 2, 1, seed=0), k=2)
    x = torch.zeros(2, dtype=torch.float64)
    y = torch.zeros(1, dtype=torch.float64)
    learner.step(x, y)
    bad_x = x.clone()
    bad_y = y.clone()
    if where == "x":
        bad_x[0] = torch.nan
    else:
        bad_y[0] = torch.inf
    with pytest.raises(NonFiniteError, match=rf"sparse: .*{where}.* at step 1"):
        learner.step(bad_x, bad_y)


def test_nan_in_state_is_detected():
    model = make_rnn_model(4, 2, 1, seed=0)
    with torch.no_grad():
        model.cell.weight_hh[0, 0] = torch.nan
    learner = ExactRTRL(model)
    x = torch.ones(2, dtype=torch.float64)
    with pytest.raises(
        NonFiniteError, match="exact: state became NaN or Inf at step 0"
    ):
        learner.step(x, torch.zeros(1, dtype=torch.float64))


class Exploding(Learner):
    """A test learner whose state turns to NaN at step 5."""

    name = "exploding"
    trains_cell = False

    def _advance(self, x):
        with torch.no_grad():
            hidden = self.cell(self.state.hidden, x)
        if self.state.step == 5:
            hidden = hidden * torch.nan
        return hidden


@pytest.fixture
def exploding_learner():
    LEARNERS["exploding"] = Exploding
    yield
    del LEARNERS["exploding"]


def test_failed_run_is_recorded_and_others_are_written(tmp_path, exploding_learner):
    config = AdaptationConfig(
        hidden_size=6,
        k=2,
        seeds=2,
        learners=("frozen", "exploding", "sparse", "exact"),
        pretrain_iterations=2,
        pretrain_batch=2,
        pretrain_window=10,
        warmup_steps=3,
        adapt_steps=20,
    )
    summary = run_adaptation(config, tmp_path, progress=False)
    failures = summary["learners"]["exploding"]["failures"]
    assert [f["seed"] for f in failures] == [0, 1]
    assert "learner exploding, seed 1, step 5" in failures[1]["error"]
    assert len(summary["learners"]["exact"]["loss"]) == 2
    stored = json.loads((tmp_path / "summary.json").read_text())
    assert stored["learners"]["sparse:k=2"]["recovery_count"] == 2
    runs = list((tmp_path / "runs" / "adaptation").glob("*.json"))
    assert len(runs) == 8


@pytest.mark.parametrize(
    "changes,message",
    [
        ({"k": 65}, r"k must be in \[0, 64\]"),
        ({"learners": ("sparse:k=-1",)}, r"k must be in \[0, 64\]; got k=-1"),
        ({"learners": ("magic",)}, "learner must be one of"),
        ({"learners": ("exact", "exact")}, "learners must be distinct"),
        ({"task": "nope"}, "task must be one of"),
        ({"dtype": "float16"}, "dtype must be one of"),
        ({"optimizer": "rmsprop"}, "optimizer must be one of"),
        ({"lr": -1.0}, "lr must be a finite number > 0"),
        ({"error_density": "sometimes"}, "error_density must be one of"),
        (
            {"error_density": "periodic", "error_period": 0},
            r"error_period must be in \[1, 2000\]; got error_period=0",
        ),
        (
            {"error_density": "periodic", "adapt_steps": 30, "error_period": 31},
            r"error_period must be in \[1, 30\]",
        ),
        ({"pretrain_batch": 0}, r"pretrain_batch must be in \[1, 1000000\]"),
        ({"pretrain_window": 0}, r"pretrain_window must be in \[1, 1000000\]"),
        (
            {"batch_seeds": "no"},
            "batch_seeds must be True or False; got batch_seeds='no'",
        ),
        ({"rescale": 1}, "rescale must be True or False"),
    ],
)
def test_adaptation_config_rejects_invalid_settings(changes, message):
    with pytest.raises(ValueError, match=message):
        AdaptationConfig(**changes).validate()


def test_learner_refuses_influence_larger_than_memory():
    cell = TanhRNNCell(1, 2500)
    model = RecurrentModel(cell, 1)
    with pytest.raises(MemoryError, match=r"needs \d+\.\d+ GiB for the \(S, P\)"):
        ExactRTRL(model)


@pytest.mark.parametrize(
    "spec,message",
    [
        ("sparse:k=4,keep_self=maybe", "keep_self must be true or false"),
        ("sparse:k=4,k=8", "'k' is given twice"),
        ("sparse:k=2.5", "k must be an integer"),
        ("sparse:selction=topk", "has no option 'selction'"),
        ("sparse:selection=top-k", "selection must be one of"),
        ("exact:decay=2", r"decay must be in \[0, 1\]"),
        ("sparse:backend=bogus", "backend must be one of"),
        ("sparse:backend=triton", "backend='triton' cannot run here"),
    ],
)
def test_preflight_rejects_bad_learner_specs(spec, message):
    config = AdaptationConfig(hidden_size=6, k=2, learners=("frozen", spec))
    with pytest.raises(ValueError, match=message):
        preflight(config)


def test_preflight_rejects_unknown_task_option():
    config = AdaptationConfig(hidden_size=6, k=2, task_options={"foo": 1})
    with pytest.raises(ValueError, match="invalid task option for task 'teacher'"):
        preflight(config)


def test_step_rejects_wrong_dtype_and_type():
    learner = ExactRTRL(make_rnn_model(4, 2, 1, seed=0, dtype=torch.float32))
    with pytest.raises(ValueError, match="x must have the model's dtype torch.float32"):
        learner.step(torch.zeros(2, dtype=torch.float64), torch.zeros(1))
    with pytest.raises(TypeError, match="x must be a torch.Tensor; got list"):
        learner.step([0.0, 0.0], torch.zeros(1))
