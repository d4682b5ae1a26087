"""Where a training run reports what happens: log.jsonl (and TensorBoard), the progress bar, printed lines, and the
callbacks a caller attached. Only the main process reports; the others' calls do nothing."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from albertkit.io.atomic import write_text_atomic
from albertkit.report.runlog import LOG_NAME, RunLog, read_log
from albertkit.runtime.console import progress_bar, say


class TrainCallback:
    """Hooks into a training run, called on the main process; override the ones you need."""

    def on_model(self, model: Any) -> None:
        """Before the first step, with the model being trained (to save snapshots of it, say)."""

    def on_log(self, step: int, record: dict[str, Any]) -> None:
        """After each training log record (loss, lr, tokens_per_second, grad_norm, epoch)."""

    def on_evaluate(self, step: int, metrics: dict[str, Any]) -> None:
        """After each evaluation, with the task's metrics."""

    def on_save(self, step: int, path: Path, what: str) -> None:
        """After a checkpoint (`what` "checkpoint") or a model folder ("best", "final") is complete at `path`."""

    def on_train_begin(self, step: int, record: dict[str, Any]) -> None:
        """Before the first step (of this process: `step` > 0 on resume), with the effective config and run info."""

    def on_train_end(self, step: int, record: dict[str, Any]) -> None:
        """After the final model is saved, with the result (steps, stop reason, final metrics, tokens/s); also
        when the run fails, with `stopped_because` "error" and the `error`."""


class RunEvents:
    """The run's log, progress bar and callbacks; `is_main` False turns every report off."""

    def __init__(self, run_dir: Path, is_main: bool, step: int, total_steps: int,
                 callbacks: Sequence[TrainCallback] = ()):
        self.is_main, self.step, self.closed = is_main, step, False
        self.log = RunLog(run_dir, enabled=is_main)
        self.callbacks = list(callbacks) if is_main else []
        self.progress = progress_bar(total=total_steps, initial=step, desc="training", unit="step",
                                     disable=not is_main, dynamic_ncols=True)

    def started(self, step: int, **record: Any) -> None:
        self.write("start", step, **record)
        for callback in self.callbacks:
            callback.on_train_begin(step, record)

    def ended(self, step: int, **record: Any) -> None:
        self.write("end", step, **record)
        self._end(step, record)

    def _end(self, step: int, record: dict[str, Any]) -> None:
        callbacks, self.callbacks = self.callbacks, []  # each callback hears of the end once
        for callback in callbacks:
            callback.on_train_end(step, record)

    def __enter__(self) -> RunEvents:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, traceback: Any) -> None:
        """A run that raises still ends its callbacks (trackers mark the run failed) and closes the log."""
        if error is not None:
            self._end(self.step, {"stopped_because": "error", "error": repr(error)})
        self.close()

    def began(self, model: Any) -> None:
        for callback in self.callbacks:
            callback.on_model(model)

    def write(self, kind: str, step: int, **values: Any) -> None:
        if self.is_main:
            self.log.write(kind, step, **values)

    def say(self, line: str) -> None:
        if self.is_main:
            say(line)

    def stepped(self) -> None:
        self.step += 1
        self.progress.update(1)

    def trained(self, step: int, record: dict[str, Any]) -> None:
        self.write("train", step, **record)
        self.progress.set_postfix(loss=f"{record['loss']:.4f}", tok_s=f"{record['tokens_per_second']:,.0f}")
        self._call("on_log", step, record)

    def evaluated(self, step: int, metrics: dict[str, Any]) -> None:
        self.write("eval", step, **metrics)
        shown = {k: v for k, v in metrics.items() if isinstance(v, int | float)}  # not confusion matrices
        self.say(f"step {step}: " + ", ".join(f"{k} {v:.4f}" for k, v in shown.items()))
        self._call("on_evaluate", step, metrics)

    def saved(self, step: int, path: Path, what: str, reason: str | None = None) -> None:
        if what == "checkpoint":
            self.write("checkpoint", step, path=str(path), reason=reason)
        self._call("on_save", step, path, what)

    def _call(self, hook: str, *args: Any) -> None:
        """Call `hook` of every callback; one that raises (to stop the run, as `albertkit tune` prunes a trial)
        leaves the log and the progress bar closed."""
        for callback in self.callbacks:
            try:
                getattr(callback, hook)(*args)
            except BaseException:
                self.close()
                raise

    def planned(self, step: int, end: int, seconds_per_step: float, budget_minutes: float, first: bool,
                at_limit: bool) -> None:
        """The schedule is planned to end with the time budget at step `end` (`at_limit`: the step limit comes first)."""
        self.write("schedule", step, planned_steps=end, seconds_per_step=seconds_per_step,
                   budget_minutes=budget_minutes, step_limit_first=at_limit)
        self.progress.total = end
        self.progress.refresh()
        if first:
            fits = " (the step limit comes first)" if at_limit else ""
            self.say(f"time budget {budget_minutes:g} min at {seconds_per_step:.3g} s/step: the learning-rate "
                     f"schedule ends at step {end}{fits}")

    def close(self) -> None:
        """Close the progress bar and the log (once: a failing run reaches here from more than one place)."""
        if not self.closed:
            self.closed = True
            self.progress.close()
            self.log.close()


def truncate_log(run_dir: Path, step: int) -> None:
    """After a resume, drop log records written past the checkpoint: the curves continue without overlap."""
    kept = [r for r in read_log(run_dir) if r.get("step", 0) <= step or r.get("kind") == "start"]
    write_text_atomic(run_dir / LOG_NAME, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in kept))
