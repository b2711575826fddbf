"""The result store behind ``reproduce``: resume after a kill, corrupt files, keys."""

import json
from dataclasses import dataclass

import pytest

from sparse_rtrl.experiments import (
    CorruptResultError,
    Experiment,
    ResultStore,
    load_results,
    run_units,
    unit_key,
)
from sparse_rtrl.experiments._backends import LocalBackend

CALLS: list[tuple[str, int]] = []
KILL_AFTER: list[int] = []


@dataclass
class CountConfig:
    name: str
    scale: float = 1.0
    seeds: int = 5


def counted_unit(config: CountConfig, seed: int) -> list[dict]:
    """Record the call. After KILL_AFTER[0] calls, stop as a killed process would."""
    if KILL_AFTER and len(CALLS) >= KILL_AFTER[0]:
        raise KeyboardInterrupt("simulated kill")
    CALLS.append((config.name, seed))
    return [{"value": config.scale * seed, "name": config.name}]


def summarize_values(results):
    return {
        condition: sorted(r["value"] for unit in units for r in unit["records"])
        for condition, units in results.items()
    }


def make_experiment(name="counting", seeds=3):
    return Experiment(
        name=name,
        title="counting",
        description="counts calls",
        configs=lambda scale: {
            "a": CountConfig("a"),
            "b": CountConfig("b", scale=10.0),
        },
        run=counted_unit,
        summarize=summarize_values,
        seeds={"tiny": seeds, "quick": seeds, "default": seeds},
    )


@pytest.fixture(autouse=True)
def reset_counters():
    CALLS.clear()
    KILL_AFTER.clear()
    yield
    CALLS.clear()
    KILL_AFTER.clear()


def test_resume_after_kill_runs_nothing_twice(tmp_path):
    experiment = make_experiment()
    units = experiment.units("tiny")
    assert len(units) == 6

    KILL_AFTER.append(4)
    with pytest.raises(KeyboardInterrupt):
        run_units(units, {experiment.name: experiment}, tmp_path, progress=False)
    assert len(CALLS) == 4
    stored = ResultStore(tmp_path).records(experiment.name)
    assert len(stored) == 4
    first_calls = list(CALLS)

    KILL_AFTER.clear()
    outcome = run_units(units, {experiment.name: experiment}, tmp_path, progress=False)
    assert outcome.skipped == 4
    assert outcome.ran == {experiment.name: 2}
    assert len(CALLS) == 6
    assert len(set(CALLS)) == 6, "a unit ran twice"
    assert CALLS[:4] == first_calls

    again = run_units(units, {experiment.name: experiment}, tmp_path, progress=False)
    assert again.skipped == 6
    assert len(CALLS) == 6
    summary = summarize_values(load_results(tmp_path, units))
    assert summary == {"a": [0.0, 1.0, 2.0], "b": [0.0, 10.0, 20.0]}


def test_stored_unit_written_at_once(tmp_path):
    experiment = make_experiment(seeds=1)
    units = experiment.units("tiny")
    run_units(units[:1], {experiment.name: experiment}, tmp_path, progress=False)
    path = ResultStore(tmp_path).path(experiment.name, units[0].key)
    stored = json.loads(path.read_text())
    assert stored["status"] == "ok"
    assert stored["seed"] == 0
    assert stored["condition"] == "a"
    assert stored["config"] == {"name": "a", "scale": 1.0, "seeds": 5}
    assert stored["records"] == [{"value": 0.0, "name": "a"}]


def test_corrupt_result_names_file(tmp_path):
    experiment = make_experiment(seeds=1)
    units = experiment.units("tiny")
    run_units(units, {experiment.name: experiment}, tmp_path, progress=False)
    path = ResultStore(tmp_path).path(experiment.name, units[1].key)
    path.write_text('{"status": "ok", "recor')
    with pytest.raises(CorruptResultError, match=str(path)):
        run_units(units, {experiment.name: experiment}, tmp_path, progress=False)
    with pytest.raises(CorruptResultError, match="delete it to rerun"):
        load_results(tmp_path, units)


def test_unit_key_ignores_seed_count():
    config = CountConfig("a", seeds=3)
    assert unit_key("e", config, 0) == unit_key("e", CountConfig("a", seeds=7), 0)
    assert unit_key("e", config, 0) != unit_key("e", config, 1)
    assert unit_key("e", config, 0) != unit_key("f", config, 0)
    assert unit_key("e", config, 0) != unit_key("e", CountConfig("a", 2.0), 0)


def test_more_seeds_reuse_finished_ones(tmp_path):
    experiment = make_experiment(seeds=2)
    run_units(
        experiment.units("tiny"),
        {experiment.name: experiment},
        tmp_path,
        progress=False,
    )
    assert len(CALLS) == 4
    outcome = run_units(
        experiment.units("tiny", seeds=3),
        {experiment.name: experiment},
        tmp_path,
        LocalBackend(1),
        progress=False,
    )
    assert outcome.skipped == 4
    assert sorted(CALLS[4:]) == [("a", 2), ("b", 2)]
