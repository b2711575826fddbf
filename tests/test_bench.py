"""A tiny quick benchmark run writes bench.json and bench.png."""

from __future__ import annotations

import json

import pytest
import torch
from click.testing import CliRunner

from sparse_rtrl._bench import (
    bench_command,
    fit_exponent,
    format_table,
    parse_ks,
    rnn_problem,
    run_benchmark,
    time_call,
    time_pair,
)
from sparse_rtrl.kernels import sparse_propagate, sparse_propagate_reference


def test_run_benchmark_writes_json_and_png(tmp_path):
    result = run_benchmark(
        sizes=(8, 12, 16),
        ks=(0, 2, "n"),
        batch=2,
        repeats=2,
        out_dir=tmp_path,
        progress=False,
    )
    data = json.loads((tmp_path / "bench.json").read_text())
    png = (tmp_path / "bench.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    assert data["dtype"] == "float32"
    assert data["sizes"] == [8, 12, 16]
    assert data["sparse_backend"] == "numba"
    methods = {(r["mode"], r["method"], r["k_label"]) for r in data["results"]}
    for expected in [
        ("single", "copy floor", "-"),
        ("single", "dense floor", "-"),
        ("single", "exact", "n"),
        ("single", "sparse", "0"),
        ("single", "sparse", "2"),
        ("single", "sparse", "n"),
        ("single", "masked dense", "2"),
        ("single", "csr", "2"),
        ("single", "gather", "2"),
        ("batched", "sparse", "2"),
        ("batched", "exact", "n"),
    ]:
        assert expected in methods
    for row in data["results"]:
        assert row["median_ms"] > 0
        assert row["calls"] == 2
        assert row["ratio_to_floor"] > 0
    sparse = [r for r in data["results"] if r["method"] == "sparse"]
    assert all(r["speedup_vs_exact"] > 0 for r in sparse)
    for row in data["results"]:
        if row["method"] in ("copy floor", "dense floor"):
            assert row["paired_floor_ms"] is None
            continue
        # Each method's ratio is to the floor timed alternately with it.
        assert row["paired_floor_ms"] > 0
        assert row["ratio_to_floor"] == pytest.approx(
            row["median_ms"] / row["paired_floor_ms"]
        )
    floor_of = {r["method"]: r["floor"] for r in data["results"]}
    assert floor_of["sparse"] == floor_of["csr"] == "copy floor"
    assert floor_of["exact"] == floor_of["masked dense"] == "dense floor"
    assert data["scaling"]["single"]["exact"] is not None
    assert data["overhead_us"]["sparse_propagate (dispatcher, auto)"] > 0
    assert data["machine"]["nproc"] >= 1
    assert data["machine"]["numba"]
    assert "sparse" in format_table(result)


def test_bench_command_quick(tmp_path):
    runner = CliRunner()
    res = runner.invoke(
        bench_command,
        [
            "--quick",
            "--sizes",
            "ignored",
            "--ks",
            "1,n",
            "--batch",
            "1",
            "--repeats",
            "1",
            "--out",
            str(tmp_path),
            "--quiet",
        ],
    )
    assert res.exit_code == 0, res.output
    assert "copy floor" in res.output
    # Two sizes always fit a line, so --quick fits no exponent.
    assert "scaling exponents: not fitted" in res.output
    assert "sparse rows: backend numba" in res.output
    data = json.loads((tmp_path / "bench.json").read_text())
    assert data["sizes"] == [16, 32]
    assert data["batch"] == 1
    assert {r["mode"] for r in data["results"]} == {"single"}
    assert (tmp_path / "bench.png").exists()


def test_bench_command_rejects_bad_ks(tmp_path):
    res = CliRunner().invoke(bench_command, ["--ks", "1,x", "--out", str(tmp_path)])
    assert res.exit_code != 0
    assert "ks must be integers" in res.output


def test_helpers():
    assert parse_ks("0, 4,n") == (0, 4, "n")
    with pytest.raises(ValueError):
        parse_ks("")
    assert fit_exponent([64, 128, 256], [1.0, 4.0, 16.0]) == pytest.approx(2.0)
    assert fit_exponent([64], [1.0]) is None
    p = rnn_problem(5, 2)
    assert p["influence"].shape == (5, 5 * 5 + 2 * 5 + 5)
    assert p["immediate_index"].shape == (5, 5 + 2 + 1)
    # distinct columns per row, distinct paths per row
    assert all(len(set(row.tolist())) == 8 for row in p["immediate_index"])
    assert all(len(set(row.tolist())) == 2 for row in p["path_index"])
    args = [
        p[k]
        for k in (
            "influence",
            "path_values",
            "path_index",
            "immediate_values",
            "immediate_index",
        )
    ]
    out = sparse_propagate(*args)
    assert out.allclose(sparse_propagate_reference(*args))


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_bench_cuda_without_gpu_rejected(tmp_path):
    res = CliRunner().invoke(
        bench_command, ["--quick", "--device", "cuda", "--out", str(tmp_path)]
    )
    assert res.exit_code == 2
    assert "torch.cuda.is_available() is False" in res.output


def test_bench_rejects_unknown_device(tmp_path):
    res = CliRunner().invoke(
        bench_command, ["--quick", "--device", "tpu9", "--out", str(tmp_path)]
    )
    assert res.exit_code == 2
    assert "--device" in res.output


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_run_benchmark_on_gpu(tmp_path):
    result = run_benchmark(
        sizes=(8,), ks=(2,), batch=2, repeats=2, out_dir=tmp_path, device="cuda"
    )
    assert result["device"].startswith("cuda")
    assert result["machine"]["gpu"]
    assert all(row["median_ms"] > 0 for row in result["results"])


def test_timing_waits_for_device_work():
    """Each timed call is followed by the sync, as a GPU's queued work must be."""
    events = []
    median, times = time_call(
        lambda: events.append("call"), 3, sync=lambda: events.append("sync")
    )
    assert median >= 0
    assert len(times) == 3
    assert events == ["sync"] + ["call", "sync"] * 4
    events.clear()
    times, floor_times = time_pair(
        lambda: events.append("fn"),
        lambda: events.append("floor"),
        2,
        sync=lambda: events.append("sync"),
    )
    assert len(times) == len(floor_times) == 2
    assert events == ["floor", "sync", "fn", "sync"] * 3
