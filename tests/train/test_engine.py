"""The step engine alone: gradient accumulation equals one big batch, non-finite steps are skipped (or, under a
loss scaler, absorbed), evaluation leaves the model as it found it."""

import math

import torch
from toy_training import ToyTask, new_model

from albertkit.train.engine import Distributed, StepEngine
from albertkit.train.settings import TrainSettings

SETTINGS = dict(batch_size=16, learning_rate=1e-2, warmup_steps=0, schedule="constant", seed=0)


def weights(model):
    return {name: p.detach().clone() for name, p in model.named_parameters()}


def test_accumulated_micro_batches_take_the_step_of_one_batch():
    task = ToyTask()
    one, two = new_model().eval(), new_model().eval()  # no dropout: both see the same function
    big = StepEngine(one, TrainSettings(**SETTINGS), 10, Distributed())
    accumulated = StepEngine(two, TrainSettings(**SETTINGS, micro_batch_size=8), 10, Distributed())
    a = big.step(task, task.micro_batches(16, 0, 0, 0, 1, 16))
    b = accumulated.step(task, task.micro_batches(16, 0, 0, 0, 1, 8))
    assert a.tokens == b.tokens == int(task.micro_batches(16, 0, 0, 0, 1, 16)[0]["attention_mask"].sum())
    torch.testing.assert_close(a.loss, b.loss)
    torch.testing.assert_close(a.grad_norm, b.grad_norm)
    for name, value in weights(one).items():
        torch.testing.assert_close(value, weights(two)[name], rtol=1e-5, atol=1e-6)


def test_a_non_finite_step_changes_nothing_but_the_schedule():
    model = new_model()
    engine = StepEngine(model, TrainSettings(**SETTINGS), 10, Distributed())
    task = ToyTask(nan_steps={1})
    before = weights(model)
    outcome = engine.step(task, task.micro_batches(16, 0, 0, 0, 1, 16))
    assert outcome.skipped and not outcome.finite and math.isnan(float(outcome.loss))
    assert all(torch.equal(before[name], value) for name, value in weights(model).items())
    assert engine.scheduler.last_epoch == 1 and not engine.optimizer.state  # no update, no moments


def test_under_a_loss_scaler_an_overflow_lowers_the_scale_and_is_no_skip():
    model = new_model()
    engine = StepEngine(model, TrainSettings(**SETTINGS), 10, Distributed())
    engine.scaler = torch.amp.GradScaler("cpu", init_scale=2.0**10)  # what fp16 on CUDA uses
    task = ToyTask(nan_steps={1})
    before = weights(model)
    outcome = engine.step(task, task.micro_batches(16, 0, 0, 0, 1, 16))
    assert not outcome.finite and not outcome.skipped and engine.scaler.get_scale() == 2.0**9
    assert all(torch.equal(before[name], value) for name, value in weights(model).items())
    outcome = engine.step(task, task.micro_batches(16, 0, 1, 0, 1, 16))
    assert outcome.finite and any(not torch.equal(before[n], v) for n, v in weights(model).items())
    assert "scaler" in engine.state_dict()


def test_evaluating_switches_to_eval_mode_without_gradients_and_back():
    model = new_model()
    engine = StepEngine(model, TrainSettings(**SETTINGS), 10, Distributed())
    model.train()
    with engine.evaluating() as evaluated:
        assert evaluated is model and not model.training and not torch.is_grad_enabled()
    assert model.training and torch.is_grad_enabled()


def test_gradient_checkpointing_setting_takes_the_same_step():
    task = ToyTask()
    plain_model, recomputed_model = new_model().eval(), new_model().eval()
    plain = StepEngine(plain_model, TrainSettings(**SETTINGS), 10, Distributed())
    recomputed = StepEngine(recomputed_model, TrainSettings(**SETTINGS, gradient_checkpointing=True), 10,
                            Distributed())
    recomputed_model.train()  # checkpointing acts in training mode only
    plain_model.train()
    assert recomputed_model.albert.encoder.gradient_checkpointing and not plain_model.albert.encoder.gradient_checkpointing
    torch.manual_seed(1)  # the same dropout masks in both steps
    a = plain.step(task, task.micro_batches(16, 0, 0, 0, 1, 16))
    torch.manual_seed(1)
    b = recomputed.step(task, task.micro_batches(16, 0, 0, 0, 1, 16))
    torch.testing.assert_close(a.grad_norm, b.grad_norm)
    for name, value in weights(plain_model).items():
        torch.testing.assert_close(value, weights(recomputed_model)[name], rtol=1e-5, atol=1e-6)
