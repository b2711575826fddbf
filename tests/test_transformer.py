"""Sparse gradient transport over attention heads, and the transformer experiment."""

import copy
import json
import math

import pytest
import torch
from torch import nn

from sparse_rtrl.experiments._transformer import (
    TransformerConfig,
    format_transformer_table,
    run_transformer_experiment,
)
from sparse_rtrl.tasks import make_task
from sparse_rtrl.transformer import (
    CausalTransformer,
    HeadGate,
    OnlineTransformer,
    analyse_heads,
    head_gradient_norms,
    kept_head_count,
    pretrain_transformer,
    sinusoidal_positions,
    summarize_heads,
)


def make_model(fraction=1.0, heads=4, layers=2, positions="learned", seed=0):
    return CausalTransformer(
        3,
        2,
        width=8,
        heads=heads,
        layers=layers,
        context=6,
        positions=positions,
        fraction=fraction,
        generator=torch.Generator().manual_seed(seed),
        dtype=torch.float64,
    )


def window_and_target(seed=1, steps=6):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(steps, 3, generator=g, dtype=torch.float64)
    y = torch.randn(2, generator=g, dtype=torch.float64)
    return x, y


def gradients(model, x, y):
    model.zero_grad(set_to_none=True)
    loss = torch.mean((model(x)[-1] - y) ** 2)
    loss.backward()
    grads = {
        name: torch.zeros_like(p) if p.grad is None else p.grad.clone()
        for name, p in model.named_parameters()
    }
    model.zero_grad(set_to_none=True)
    return grads


def mask_gradients_by_hand(model, masks):
    """Make every gate keep all heads, and zero the dropped heads' gradient by hook."""
    handles = []
    for gate, mask in zip(model.gates, masks):
        gate.set_keep(torch.ones(gate.heads, dtype=torch.bool))
        scale = mask.to(torch.float64).view(-1, 1, 1)

        def zero_dropped(module, inputs, output, scale=scale):
            output.register_hook(lambda grad: grad * scale)

        handles.append(gate.register_forward_hook(zero_dropped))
    return handles


@pytest.mark.parametrize("fraction,seed", [(0.5, 0), (0.25, 1), (0.75, 2)])
def test_masked_backward_matches_hand_masking(fraction, seed):
    gated = make_model(fraction, seed=seed)
    x, y = window_and_target(seed)
    masks = [gate.keep.clone() for gate in gated.gates]
    assert all(int(mask.sum()) == kept_head_count(4, fraction) for mask in masks)
    got = gradients(gated, x, y)

    reference = copy.deepcopy(gated)
    handles = mask_gradients_by_hand(reference, masks)
    expected = gradients(reference, x, y)
    for handle in handles:
        handle.remove()
    dense = gradients(reference, x, y)

    for name in expected:
        torch.testing.assert_close(got[name], expected[name], rtol=1e-12, atol=1e-15)
    qkv = "blocks.0.attention.qkv.weight"
    assert not torch.allclose(got[qkv], dense[qkv])


def test_dropped_head_gets_no_qkv_gradient():
    model = make_model(0.5)
    x, y = window_and_target()
    model.zero_grad(set_to_none=True)
    torch.mean((model(x)[-1] - y) ** 2).backward()
    norms = head_gradient_norms(model)
    for layer, gate in enumerate(model.gates):
        qkv = model.attentions[layer].qkv.weight.grad.view(3, 4, 2, 8)
        for head in range(4):
            head_grad = qkv[:, head]
            if gate.keep[head]:
                assert head_grad.abs().sum() > 0
            else:
                assert torch.all(head_grad == 0)
        # A dropped head still gets gradient in proj, whose input is its forward output.
        assert torch.all(norms[layer] > 0)


@pytest.mark.parametrize("fraction", [0.25, 0.5, 0.75])
@pytest.mark.parametrize("positions", ["learned", "sinusoidal"])
def test_mask_leaves_forward_bitwise_equal(fraction, positions):
    dense = make_model(1.0, positions=positions)
    gated = copy.deepcopy(dense)
    gated.set_gradient_heads(fraction, generator=torch.Generator().manual_seed(3))
    x, _ = window_and_target()
    with torch.no_grad():
        assert torch.equal(gated(x), dense(x))
    assert torch.equal(gated(x), dense(x))


def test_fraction_one_equals_plain_autograd():
    gated = make_model(1.0)
    assert all(bool(gate.keep.all()) for gate in gated.gates)
    plain = copy.deepcopy(gated)
    for attention in plain.attentions:
        attention.gate = nn.Identity()
    x, y = window_and_target()
    got = gradients(gated, x, y)
    expected = gradients(plain, x, y)
    for name in expected:
        assert torch.equal(got[name], expected[name]), name


def test_gate_resamples_each_step_or_stays_fixed():
    g = torch.Generator().manual_seed(0)
    moving = HeadGate(12, 1 / 3, resample=True, generator=g)
    fixed = HeadGate(12, 1 / 3, resample=False, generator=g)
    first_moving, first_fixed = moving.keep.clone(), fixed.keep.clone()
    changed = False
    for _ in range(10):
        moving.resample_heads()
        fixed.resample_heads()
        assert int(moving.keep.sum()) == 4
        changed |= not torch.equal(moving.keep, first_moving)
        assert torch.equal(fixed.keep, first_fixed)
    assert changed


@pytest.mark.parametrize(
    "heads,fraction,kept", [(12, 1 / 2, 6), (12, 1 / 3, 4), (12, 1 / 4, 3), (4, 1, 4)]
)
def test_kept_head_count(heads, fraction, kept):
    assert kept_head_count(heads, fraction) == kept


@pytest.mark.parametrize(
    "heads,fraction,message",
    [
        (4, 0.0, "must be in \\(0, 1\\]"),
        (4, -0.5, "must be in \\(0, 1\\]"),
        (4, 1.5, "must be in \\(0, 1\\]"),
        (4, math.nan, "must be in \\(0, 1\\]"),
        (4, "1/2", "must be in \\(0, 1\\]"),
        (4, 0.2, "keeps no head of 4 heads"),
        (12, 1 / 13, "keeps no head of 12 heads"),
        (0, 0.5, "heads must be in"),
    ],
)
def test_invalid_fraction_raises(heads, fraction, message):
    with pytest.raises(ValueError, match=message):
        HeadGate(heads, fraction)


@pytest.mark.parametrize(
    "kwargs,message",
    [
        ({"width": 10, "heads": 4}, "heads must divide width"),
        ({"width": 8, "heads": 16}, "heads must be in"),
        ({"width": 8, "heads": 0}, "heads must be in"),
        ({"width": 8, "heads": 4, "fraction": 0.2}, "keeps no head"),
        ({"width": 8, "heads": 4, "positions": "rotary"}, "positions must be one of"),
    ],
)
def test_invalid_model_raises(kwargs, message):
    with pytest.raises(ValueError, match=message):
        CausalTransformer(3, 2, **kwargs)


def test_window_longer_than_context_raises():
    model = make_model()
    with pytest.raises(ValueError, match="at most context=6"):
        model(torch.zeros(7, 3, dtype=torch.float64))


def test_attention_is_causal():
    model = make_model()
    with torch.no_grad():
        model.position_table.zero_()
    x, _ = window_and_target(steps=6)
    with torch.no_grad():
        full = model(x)
        changed = model(torch.cat([x[:3], torch.zeros(3, 3, dtype=torch.float64)]))
    torch.testing.assert_close(changed[:3], full[:3], rtol=0, atol=1e-15)
    assert not torch.allclose(changed[3:], full[3:])


def test_positions_are_right_aligned():
    model = make_model()
    x, _ = window_and_target(steps=6)
    with torch.no_grad():
        model.position_table.zero_()
        first_before = model(x)[0]
        short_before = model(x[:1])[0]
        # Not constant: LayerNorm would remove a constant shift.
        model.position_table[-1] = torch.linspace(-1, 1, 8, dtype=torch.float64)
        first_after = model(x)[0]
        short_after = model(x[:1])[0]
    # A one-step window takes the newest position, context - 1, not position 0.
    torch.testing.assert_close(short_before, first_before, rtol=0, atol=1e-15)
    assert torch.equal(first_after, first_before)
    assert not torch.allclose(short_after, short_before)


def test_sinusoidal_table():
    table = sinusoidal_positions(5, 7)
    assert table.shape == (5, 7)
    torch.testing.assert_close(table[0, 0::2], torch.zeros(4, dtype=torch.float64))
    torch.testing.assert_close(table[0, 1::2], torch.ones(3, dtype=torch.float64))
    torch.testing.assert_close(table[3, 0], torch.tensor(math.sin(3.0)).double())


def test_online_learner_steps_and_freezes():
    model = make_model(0.5)
    before = copy.deepcopy(model.state_dict())
    frozen = OnlineTransformer(copy.deepcopy(model))
    learner = OnlineTransformer(model, torch.optim.SGD(model.parameters(), lr=0.1))
    g = torch.Generator().manual_seed(0)
    for _ in range(9):
        x = torch.randn(3, generator=g, dtype=torch.float64)
        y = torch.randn(2, generator=g, dtype=torch.float64)
        assert frozen.step(x, y).dim() == 0
        learner.step(x, y)
    assert learner.window.shape == (6, 3)
    assert learner.steps == 9
    assert learner.step(torch.zeros(3, dtype=torch.float64)) is None
    for name, value in frozen.model.state_dict().items():
        assert torch.equal(value, before[name]), name
    changed = [not torch.equal(v, before[k]) for k, v in model.state_dict().items()]
    assert any(changed)


def test_pretraining_lowers_loss():
    task = make_task("teacher")
    model = CausalTransformer(
        3, 2, width=8, heads=2, context=8, generator=torch.Generator().manual_seed(0)
    )
    losses = pretrain_transformer(
        model, task, 40, batch_size=8, lr=1e-2, generator=torch.Generator()
    )
    assert len(losses) == 40
    assert sum(losses[-5:]) < sum(losses[:5])


def test_head_analysis_leaves_model_unchanged():
    model = make_model(0.5)
    masks = [gate.keep.clone() for gate in model.gates]
    state = copy.deepcopy(model.state_dict())
    x, y = window_and_target()
    result = analyse_heads(model, x, y, lr=0.1)

    assert result["grad_norm"].shape == (2, 4)
    assert result["delta"].shape == (2, 4)
    assert (result["grad_norm"] > 0).all()
    for gate, mask in zip(model.gates, masks):
        assert torch.equal(gate.keep, mask)
    for name, value in model.state_dict().items():
        assert torch.equal(value, state[name]), name
    assert all(p.grad is None for p in model.parameters())
    assert result["delta_all"] < 0

    summary = summarize_heads([result, result])
    assert summary["snapshots"] == 2
    assert summary["rank_stability"] == pytest.approx(1.0)
    assert len(summary["gain"]) == 2
    assert sum(summary["norm_share"][0]) == pytest.approx(1.0)


def test_head_analysis_single_head_delta_by_hand():
    model = make_model(1.0, layers=1)
    x, y = window_and_target()
    lr = 0.1
    result = analyse_heads(model, x, y, lr)

    model.gates[0].set_keep(torch.tensor([False, True, False, False]))
    grads = gradients(model, x, y)
    stepped = copy.deepcopy(model)
    with torch.no_grad():
        for name, p in stepped.named_parameters():
            p.sub_(lr * grads[name])
        base = torch.mean((model(x)[-1] - y) ** 2)
        after = torch.mean((stepped(x)[-1] - y) ** 2)
    assert result["delta"][0, 1] == pytest.approx(float(after - base), rel=1e-9)


def tiny_config(**overrides):
    config = TransformerConfig.quick(
        width=8,
        heads=4,
        layers=1,
        context=6,
        fractions=("1", "1/2", "1/4"),
        seeds=2,
        pretrain_iterations=3,
        pretrain_batch=4,
        warmup_steps=5,
        adapt_steps=12,
        analysis_every=5,
    )
    return TransformerConfig(**{**config.__dict__, **overrides})


@pytest.mark.parametrize(
    "overrides,message",
    [
        ({"fractions": ("1", "1/8")}, "keeps no head of 4 heads"),
        ({"fractions": ("1", "2")}, "must be in \\(0, 1\\]"),
        ({"fractions": ("1", "half")}, "must look like 1/3"),
        ({"fractions": ("1/2", "2/4")}, "must be distinct"),
        ({"heads": 3}, "heads must divide width"),
        ({"seeds": 0}, "seeds must be in"),
    ],
)
def test_invalid_config_raises(overrides, message):
    with pytest.raises(ValueError, match=message):
        tiny_config(**overrides).validate()


def test_transformer_experiment_smoke_run(tmp_path):
    config = tiny_config()
    summary = run_transformer_experiment(config, tmp_path, progress=False)

    labels = ["heads=1", "heads=1/2", "heads=1/4", "frozen"]
    assert list(summary["learners"]) == labels
    for row in summary["learners"].values():
        assert row["seeds"] == [0, 1]
        assert len(row["loss"]) == 2
    dense = summary["learners"]["heads=1"]
    assert dense["recovery_mean"] == pytest.approx(100.0)
    assert summary["learners"]["frozen"]["recovery_mean"] == pytest.approx(0.0)
    assert set(summary["heads"]) == {"0", "1"}
    assert summary["heads"]["0"]["snapshots"] == 3
    assert "heads=1/2" in format_transformer_table(summary)

    runs = sorted((tmp_path / "runs" / "transformer").glob("*.json"))
    assert len(runs) == 8
    saved = json.loads((tmp_path / "summary.json").read_text())
    assert (
        saved["learners"]["heads=1/2"]["loss"]
        == summary["learners"]["heads=1/2"]["loss"]
    )

    stamps = [path.stat().st_mtime_ns for path in runs]
    again = run_transformer_experiment(config, tmp_path, progress=False)
    assert [path.stat().st_mtime_ns for path in runs] == stamps
    assert (
        again["learners"]["heads=1/2"]["loss"]
        == summary["learners"]["heads=1/2"]["loss"]
    )
