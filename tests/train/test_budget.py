"""Schedules that end with the time budget, on a synthetic clock: each training step costs 1 s, each evaluation
3 s; nothing sleeps."""

import pytest
from toy_training import Crash, ToyTask, new_model

from albertkit.modeling.weights import load_torch_file
from albertkit.report.runlog import read_log
from albertkit.train.budget import TimeBudget
from albertkit.train.loop import train
from albertkit.train.optim import WarmupSchedule
from albertkit.train.settings import TrainSettings

BUDGET = dict(max_steps=1000, time_budget_minutes=1.0, batch_size=16, learning_rate=1e-2, warmup_steps=5,
              eval_every=10, log_every=1, save_every=5, save_every_minutes=None, keep_last=20, seed=0)


class Clock:
    def __init__(self, now: float = 0.0):
        self.now = now

    def __call__(self) -> float:
        return self.now


class ClockedTask(ToyTask):
    """The toy task on a synthetic clock: a step takes one second, an evaluation three."""

    def __init__(self, clock: Clock, **faults):
        super().__init__(**faults)
        self.clock = clock

    def micro_batches(self, *args):
        self.clock.now += 1.0
        return super().micro_batches(*args)

    def evaluate(self, model):
        self.clock.now += 3.0
        return super().evaluate(model)


def learning_rates(run_dir) -> dict[int, float]:
    return {r["step"]: r["lr"] for r in read_log(run_dir) if r["kind"] == "train"}


def test_the_schedule_ends_when_the_budget_does(tmp_path):
    clock = Clock()
    result = train(new_model(), ClockedTask(clock), TrainSettings(**BUDGET), tmp_path, clock=clock)
    lrs = learning_rates(tmp_path)
    last = max(lrs)
    # Stopped by the plan within a step and an evaluation (1 s + 3 s) of the 60 s budget, the decay complete.
    assert result.stopped_because == "time_budget" and result.steps == last < 1000
    assert 60 - 4 <= last + 3 * (last // 10) <= 60
    assert lrs[last] == 0.0 and lrs[last - 1] > 0.0
    # Planned after warmup from the measured pace (1 s/step), then re-planned after each evaluation (1.3 s/step).
    plans = [r for r in read_log(tmp_path) if r["kind"] == "schedule"]
    assert plans[0]["step"] == 6 and plans[0]["seconds_per_step"] == pytest.approx(1.0)
    assert plans[0]["planned_steps"] == 60 and plans[-1]["planned_steps"] == last
    # Re-planning keeps the learning rate continuous: it only ever falls after warmup, by small steps.
    after_warmup = [lrs[step] for step in range(5, last + 1)]
    drops = [a - b for a, b in zip(after_warmup, after_warmup[1:], strict=False)]
    assert min(drops) >= 0 and max(drops) < 2.5 * 1e-2 / (last - 5)


def test_resume_keeps_the_plan_and_the_time_spent(tmp_path):
    straight_clock = Clock()
    train(new_model(), ClockedTask(straight_clock), TrainSettings(**BUDGET), tmp_path / "straight",
          clock=straight_clock)
    with pytest.raises(Crash):
        crash_clock = Clock()
        train(new_model(), ClockedTask(crash_clock, crash_at_step=23), TrainSettings(**BUDGET), tmp_path / "run",
              clock=crash_clock)
    saved = load_torch_file(tmp_path / "run" / "checkpoints" / "step-00000020" / "trainer_state.pt")
    assert saved["elapsed_seconds"] == 26.0  # 20 steps and 2 evaluations
    assert saved["scheduler"]["lr_lambdas"][0]["total_steps"] < 1000  # the plan is in the trainer state
    resumed_clock = Clock(1000.0)  # a new process: another clock origin
    result = train(new_model(), ClockedTask(resumed_clock), TrainSettings(**BUDGET), tmp_path / "run", resume=True,
                   clock=resumed_clock)
    straight, resumed = learning_rates(tmp_path / "straight"), learning_rates(tmp_path / "run")
    assert [resumed[s] for s in range(21, 30)] == [straight[s] for s in range(21, 30)]
    assert resumed[result.steps] == 0.0
    assert 60 - 4 <= 26.0 + (resumed_clock.now - 1000.0) - 3 <= 60  # the budget counts the first process too


def test_a_warmup_given_as_a_share_is_a_share_of_the_planned_steps(tmp_path):
    clock = Clock()
    settings = TrainSettings(**{**BUDGET, "warmup_steps": None, "warmup_ratio": 0.2, "max_steps": 300})
    result = train(new_model(), ClockedTask(clock), settings, tmp_path, clock=clock)
    lrs = learning_rates(tmp_path)
    peak = max(lrs, key=lrs.get)
    # Planned for 300 steps the warmup would take 60, longer than the budget allows; it follows the plan instead.
    assert result.stopped_because == "time_budget" and lrs[result.steps] == 0.0
    assert lrs[peak] == pytest.approx(1e-2, rel=0.02) and 0.1 * result.steps <= peak <= 0.3 * result.steps
    assert all(lrs[s] < lrs[s + 1] for s in range(1, peak))  # it rises without a jump back


def test_without_a_budget_nothing_is_planned(tmp_path):
    clock = Clock()
    settings = TrainSettings(**{**BUDGET, "time_budget_minutes": None, "max_steps": 12})
    result = train(new_model(), ClockedTask(clock), settings, tmp_path, clock=clock)
    assert result.steps == 12 and result.stopped_because == "max_steps"
    assert not [r for r in read_log(tmp_path) if r["kind"] == "schedule"]


def test_a_budget_with_room_to_spare_keeps_the_step_limit(tmp_path, capsys):
    clock = Clock()
    settings = TrainSettings(**{**BUDGET, "time_budget_minutes": 10.0, "max_steps": 20})
    result = train(new_model(), ClockedTask(clock), settings, tmp_path, clock=clock)
    assert result.steps == 20 and result.stopped_because == "max_steps"
    assert "time budget 10 min at 1 s/step: the learning-rate schedule ends at step 20 (the step limit comes first)" \
        in capsys.readouterr().out


def test_replan_is_continuous_and_reaches_zero_at_the_new_end():
    schedule = WarmupSchedule(warmup_steps=10, total_steps=110, kind="cosine")
    before = schedule(60)
    schedule.replan(60, 80)
    assert schedule(60) == pytest.approx(before) and schedule(80) == pytest.approx(0.0, abs=1e-12)
    assert schedule(70) < before and schedule.decay_progress(70) == pytest.approx(0.5 + 0.5 * 10 / 20)


def test_replan_during_warmup_continues_the_ramp():
    schedule = WarmupSchedule(warmup_steps=100, total_steps=1000, kind="linear")
    schedule.replan(10, 50, warmup_steps=20)
    assert schedule(10) == pytest.approx(0.1) and schedule(15) == pytest.approx(0.55) and schedule(20) == 1.0
    assert schedule(35) == pytest.approx(0.5) and schedule(50) == 0.0
    untouched = WarmupSchedule(warmup_steps=100, total_steps=1000, kind="linear")
    assert [untouched(s) for s in (0, 37, 100, 550)] == [0.0, 0.37, 1.0, 0.5]  # no plan: the plain formula


def test_time_budget_measures_from_the_first_step():
    clock = Clock()
    budget = TimeBudget(minutes=1.0, spent_seconds=10.0, clock=clock)
    clock.now = 5.0  # the first step (allocation, compilation) is not measured
    budget.observe(1)
    assert not budget.plan_due(5, warmup_steps=0, evaluated=False, end=100)  # too few steps measured
    clock.now = 5.0 + 2.0 * 5
    assert budget.plan_due(6, warmup_steps=0, evaluated=False, end=100)
    assert budget.plan(6) == (6 + int((60 - 25) / 2.0), 2.0)
    assert not budget.plan_due(7, warmup_steps=0, evaluated=False, end=100)
    assert budget.plan_due(7, warmup_steps=0, evaluated=True, end=100)
    assert not budget.plan_due(100, warmup_steps=0, evaluated=True, end=100)  # the schedule has ended


def test_a_run_stopped_by_the_clock_logs_its_last_steps(tmp_path):
    clock = Clock()
    settings = TrainSettings(**{**BUDGET, "time_budget_minutes": 0.05, "log_every": 10})  # 3 s: no plan yet
    result = train(new_model(), ClockedTask(clock), settings, tmp_path, clock=clock)
    assert result.stopped_because == "time_budget" and result.steps == 3
    assert [r["step"] for r in read_log(tmp_path) if r["kind"] == "train"] == [3]
    assert result.tokens_per_second > 0


class SlowStartTask(ClockedTask):
    """The first steps take 10 s (a busy machine, a cold start), the rest 1 s."""

    def micro_batches(self, *args):
        self.clock.now += 9.0 if self.clock.now < 60 else 0.0
        return super().micro_batches(*args)


def test_a_slow_start_does_not_fix_the_end(tmp_path):
    clock = Clock()
    settings = TrainSettings(**{**BUDGET, "time_budget_minutes": 5.0, "eval_every": 1000, "warmup_steps": 50})
    result = train(new_model(), SlowStartTask(clock), settings, tmp_path, clock=clock)
    plans = [r["planned_steps"] for r in read_log(tmp_path) if r["kind"] == "schedule"]
    # The first plan, from 10 s steps, ends at step 30; re-plans as the measured steps double follow the faster pace.
    assert plans[0] == 30 and plans[-1] == result.steps
    assert result.stopped_because == "time_budget" and clock.now >= 300 - 15 and result.steps > 200
