"""Tests for albertkit.train.optim: LAMB against a plain reference, parameter groups, schedules."""

import copy
import io
import math
import time

import pytest
import torch
from torch import nn

from albertkit.errors import UserError
from albertkit.modeling.config import AlbertConfig
from albertkit.modeling.model import AlbertForPreTraining
from albertkit.train.optim import Lamb, build_optimizer, build_schedule, parameter_groups


def reference_lamb_step(params, grads, state, *, lr, weight_decay, adapt, betas=(0.9, 0.999), eps=1e-6):
    """google-research/albert lamb_optimizer.py, one parameter at a time, in float64."""
    beta1, beta2 = betas
    for p, g in zip(params, grads, strict=True):
        m, v = state.setdefault(p, (torch.zeros_like(p), torch.zeros_like(p)))
        m = beta1 * m + (1 - beta1) * g
        v = beta2 * v + (1 - beta2) * g * g
        update = m / (v.sqrt() + eps) + weight_decay * p
        ratio = 1.0
        if adapt:
            w_norm, u_norm = p.norm(), update.norm()
            ratio = (w_norm / u_norm).item() if w_norm > 0 and u_norm > 0 else 1.0
        p.sub_(ratio * lr * update)
        state[p] = (m, v)


def random_model(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(6, 12), nn.LayerNorm(12), nn.Tanh(), nn.Linear(12, 5), nn.Linear(5, 3))


def loss_of(model: nn.Module, step: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(100 + step)
    x = torch.randn(16, 6, generator=generator)
    y = torch.randn(16, 3, generator=generator)
    return ((model(x) - y) ** 2).mean()


def test_lamb_matches_per_parameter_reference():
    model = random_model()
    layers = list(model)
    # four groups cover every (decay, adapt) combination; the last Linear's bias gets no gradient
    settings = [(0.01, True), (0.0, False), (0.1, False), (0.0, True)]
    group_params = [
        [layers[0].weight, layers[0].bias],
        [layers[1].weight, layers[1].bias],
        [layers[3].weight, layers[3].bias],
        [layers[4].weight, layers[4].bias],
    ]
    groups = [
        {"params": ps, "weight_decay": wd, "adapt": adapt}
        for ps, (wd, adapt) in zip(group_params, settings, strict=True)
    ]
    optimizer = Lamb(groups, lr=0.05)
    reference = [[p.detach().double().clone() for p in ps] for ps in group_params]
    reference_state: dict = {}
    frozen_bias = layers[4].bias.detach().clone()
    for step in range(6):
        optimizer.zero_grad(set_to_none=True)
        loss_of(model, step).backward()
        layers[4].bias.grad = None
        for ref_params, params, (wd, adapt) in zip(reference, group_params, settings, strict=True):
            with_grad = [
                (r, p.grad.double()) for r, p in zip(ref_params, params, strict=True) if p.grad is not None
            ]
            reference_lamb_step(
                [r for r, _ in with_grad],
                [g for _, g in with_grad],
                reference_state,
                lr=0.05,
                weight_decay=wd,
                adapt=adapt,
            )
        optimizer.step()
    for ref_params, params in zip(reference, group_params, strict=True):
        for r, p in zip(ref_params, params, strict=True):
            assert torch.allclose(p.detach().double(), r, atol=1e-6, rtol=0), (p - r).abs().max()
    assert torch.equal(layers[4].bias.detach(), frozen_bias)
    assert layers[4].bias not in optimizer.state
    # the parameters really moved, by more than the tolerance
    assert (layers[0].weight.detach().double() - random_model()[0].weight.double()).abs().max() > 0.1
    assert set(optimizer.state[layers[0].weight]) == {"exp_avg", "exp_avg_sq"}


def test_trust_ratio_is_one_when_a_norm_is_zero():
    zero_weight = nn.Parameter(torch.zeros(4))
    still_weight = nn.Parameter(torch.tensor([3.0, -4.0]))
    optimizer = Lamb([zero_weight, still_weight], lr=0.1, weight_decay=0.0)
    zero_weight.grad = torch.tensor([1.0, -2.0, 0.5, 0.0])
    still_weight.grad = torch.zeros(2)  # zero update norm
    optimizer.step()
    # ||w|| = 0: ratio 1, so w = -lr * m / (sqrt(v) + eps) with m = 0.1 g, v = 0.001 g^2
    g = torch.tensor([1.0, -2.0, 0.5, 0.0])
    expected = -0.1 * (0.1 * g) / ((0.001 * g * g).sqrt() + 1e-6)
    assert torch.allclose(zero_weight.detach(), expected, atol=1e-7, rtol=0)
    assert zero_weight[0].item() == pytest.approx(-0.1 * 0.1 / (math.sqrt(0.001) + 1e-6), rel=1e-6)
    # ||update|| = 0: ratio 1 (not nan), weight unchanged
    assert torch.equal(still_weight.detach(), torch.tensor([3.0, -4.0]))


def test_trust_ratio_scales_step_to_weight_norm():
    weight = nn.Parameter(torch.tensor([3.0, 4.0]))  # ||w|| = 5
    optimizer = Lamb([weight], lr=0.01)
    weight.grad = torch.tensor([1.0, 0.0])
    optimizer.step()
    # update = [0.1 / (sqrt(0.001) + 1e-6), 0], ratio = 5 / ||update|| so the step is lr * 5 along x
    assert torch.allclose(weight.detach(), torch.tensor([3.0 - 0.05, 4.0]), atol=1e-6, rtol=0)


def test_state_dict_round_trip_continues_bitwise_identically():
    def train(model, optimizer, schedule, steps):
        for step in steps:
            optimizer.zero_grad(set_to_none=True)
            loss_of(model, step).backward()
            optimizer.step()
            schedule.step()

    model = random_model()
    optimizer = build_optimizer("lamb", model, lr=0.02)
    schedule = build_schedule(optimizer, warmup_steps=2, total_steps=8, kind="cosine")
    train(model, optimizer, schedule, range(3))
    buffer = io.BytesIO()
    torch.save(
        {"model": model.state_dict(), "optim": optimizer.state_dict(), "sched": schedule.state_dict()}, buffer
    )
    train(model, optimizer, schedule, range(3, 7))

    buffer.seek(0)
    saved = torch.load(buffer, weights_only=True)
    resumed = random_model(seed=1)
    resumed.load_state_dict(saved["model"])
    resumed_optimizer = build_optimizer("lamb", resumed, lr=0.02)
    resumed_schedule = build_schedule(resumed_optimizer, warmup_steps=2, total_steps=8, kind="cosine")
    resumed_optimizer.load_state_dict(saved["optim"])
    resumed_schedule.load_state_dict(saved["sched"])
    train(resumed, resumed_optimizer, resumed_schedule, range(3, 7))

    for (name, a), b in zip(model.named_parameters(), resumed.parameters(), strict=True):
        assert torch.equal(a, b), name
    assert resumed_optimizer.param_groups[0]["lr"] == optimizer.param_groups[0]["lr"] > 0


def tiny_albert() -> nn.Module:
    config = AlbertConfig.from_preset(
        "tiny", vocab_size=50, embedding_size=8, hidden_size=16, num_attention_heads=2, intermediate_size=32
    )
    return AlbertForPreTraining(config)


def test_parameter_groups_on_albert_follow_google_exclusions():
    model = tiny_albert()
    decayed, not_decayed = parameter_groups(model, weight_decay=0.01)
    assert (decayed["weight_decay"], decayed["adapt"]) == (0.01, True)
    assert (not_decayed["weight_decay"], not_decayed["adapt"]) == (0.0, False)
    group_of = {id(p): "decay" for p in decayed["params"]} | {
        id(p): "no_decay" for p in not_decayed["params"]
    }
    names = dict(model.named_parameters())
    # tied decoder weight/bias appear once: 32 unique tensors, none in both groups
    assert len(decayed["params"]) + len(not_decayed["params"]) == len(group_of) == len(names) == 32
    for name, param in names.items():
        excluded = "LayerNorm" in name or "layer_norm" in name or "bias" in name
        assert group_of[id(param)] == ("no_decay" if excluded else "decay"), name
    layer = "albert.encoder.albert_layer_groups.0.albert_layers.0."
    assert group_of[id(names["albert.embeddings.word_embeddings.weight"])] == "decay"
    assert group_of[id(names[layer + "attention.query.weight"])] == "decay"
    assert group_of[id(names[layer + "full_layer_layer_norm.weight"])] == "no_decay"
    assert group_of[id(names[layer + "attention.LayerNorm.weight"])] == "no_decay"
    assert group_of[id(names["predictions.bias"])] == "no_decay"
    assert len(decayed["params"]) == 13


def test_parameter_groups_skip_frozen_and_drop_empty_groups():
    model = nn.Sequential(nn.Linear(3, 3, bias=False), nn.Linear(3, 3))
    model[1].requires_grad_(False)
    groups = parameter_groups(model, weight_decay=0.1)
    assert len(groups) == 1
    assert groups[0]["params"] == [model[0].weight]


def test_build_optimizer_kinds_and_errors():
    model = tiny_albert()
    lamb = build_optimizer("lamb", model, lr=1e-3, weight_decay=0.02)
    assert isinstance(lamb, Lamb)
    assert [(g["weight_decay"], g["adapt"], g["eps"]) for g in lamb.param_groups] == [
        (0.02, True, 1e-6),
        (0.0, False, 1e-6),
    ]
    adamw = build_optimizer("adamw", model, lr=1e-3)
    assert isinstance(adamw, torch.optim.AdamW)
    assert adamw.param_groups[0]["foreach"] is True and adamw.param_groups[0]["fused"] is False
    assert [g["weight_decay"] for g in adamw.param_groups] == [0.01, 0.0]
    with pytest.raises(UserError, match="unknown optimizer 'sgd'; choose one of: lamb, adamw"):
        build_optimizer("sgd", model, lr=1e-3)


@pytest.mark.parametrize(
    ("kind", "expected"),
    [
        # steps: 0, mid-warmup 5, end of warmup 10, quarter of decay 35, midway 60, end 110, past end 130
        ("linear", [0.0, 0.5, 1.0, 0.75, 0.5, 0.0, 0.0]),
        ("cosine", [0.0, 0.5, 1.0, 0.5 * (1 + math.cos(math.pi / 4)), 0.5, 0.0, 0.0]),
        ("constant", [0.0, 0.5, 1.0, 1.0, 1.0, 1.0, 1.0]),
    ],
)
def test_schedule_values(kind, expected):
    weight = nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.SGD([weight], lr=2e-3)
    schedule = build_schedule(optimizer, warmup_steps=10, total_steps=110, kind=kind)
    lrs = []
    for _ in range(131):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        schedule.step()
    got = [lrs[step] for step in (0, 5, 10, 35, 60, 110, 130)]
    assert got == pytest.approx([2e-3 * e for e in expected], abs=1e-12)


def test_schedule_without_warmup_starts_at_full_lr():
    optimizer = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=1.0)
    build_schedule(optimizer, warmup_steps=0, total_steps=4)
    assert optimizer.param_groups[0]["lr"] == 1.0


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (
            {"warmup_steps": 20, "total_steps": 10},
            r"warmup_steps must be between 0 and total_steps \(10\), got 20",
        ),
        ({"warmup_steps": 0, "total_steps": 0}, "total_steps must be >= 1, got 0"),
        ({"warmup_steps": 1, "total_steps": 10, "kind": "step"}, "unknown schedule 'step'"),
    ],
)
def test_schedule_rejects_bad_arguments(kwargs, message):
    optimizer = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=1.0)
    with pytest.raises(UserError, match=message):
        build_schedule(optimizer, **kwargs)


def test_lamb_reduces_loss_on_tiny_regression():
    torch.manual_seed(0)
    x = torch.randn(128, 8)
    y = x @ torch.randn(8, 2) + 0.5
    model = nn.Linear(8, 2)
    optimizer = build_optimizer("lamb", model, lr=0.05, weight_decay=0.0)

    def loss() -> torch.Tensor:
        return ((model(x) - y) ** 2).mean()

    initial = loss().item()
    for _ in range(200):
        optimizer.zero_grad()
        loss().backward()
        optimizer.step()
    final = loss().item()
    assert initial > 1.0
    assert final < 0.01 * initial


def test_lamb_step_time_against_foreach_adamw():
    torch.manual_seed(0)
    model = nn.Sequential(*[nn.Linear(64, 64) for _ in range(50)])  # 100 parameter tensors
    grads = [torch.randn_like(p) for p in model.parameters()]
    timings = {}
    for name in ("adamw", "lamb"):
        trained = copy.deepcopy(model)
        for p, g in zip(trained.parameters(), grads, strict=True):
            p.grad = g
        optimizer = build_optimizer(name, trained, lr=1e-3)
        optimizer.step()  # allocate state outside the timing
        start = time.perf_counter()
        for _ in range(20):
            optimizer.step()
        timings[name] = (time.perf_counter() - start) / 20
        # 21 steps of either optimizer move every weight away from its start
        assert all(
            not torch.equal(a, b) for a, b in zip(trained.parameters(), model.parameters(), strict=True)
        )
    print(
        f"step on 100 tensors: lamb {timings['lamb'] * 1e3:.2f} ms, adamw(foreach) {timings['adamw'] * 1e3:.2f} ms, "
        f"ratio {timings['lamb'] / timings['adamw']:.2f}"
    )
