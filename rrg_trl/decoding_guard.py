"""A repetition guard that sees what the evaluation decodes (issue 16).

GRPO's reward guards (:mod:`rrg_trl.reward_guards`) score the *sampled* completions RL trains on; the
evaluation scores reports decoded another way (beam search with n-gram blocking). RL once raised the sampled
reward while every evaluated report became one sentence repeated. This callback decodes a fixed probe set of
held-out prompts with the evaluation's own :class:`~rrg_trl.evaluation.decoding.Decoding`, every
``every_n_steps`` steps, and measures it with the evaluation's own degeneracy functions
(:func:`rrg_trl.metrics.degeneracy.degeneracy`). Before the first step it measures the starting (SFT) policy:
the baseline. The figures go into the trainer's logs (``decoding_guard/...``: the printed lines,
``trainer_state.json``). When the repeated-trigram fraction or the identical-report share rises above the
baseline by more than its tolerance, it stops training. With ``restore`` (the default) the stage then saves
the best non-degenerate state: with a ``reward`` function (hypotheses, references -> rewards; the demo passes
the reward server's -RadCliQ), the passing check (or the starting policy) whose probe reports scored best
against the probe's references, a later state replacing the kept one only when its paired gain over it exceeds
the gain's standard error (on the tiny demo, GRPO's probe reward wandered by more than its real changes, and
picking the highest mean kept states that were worse on the test studies); else the last check that passed. A run that ends normally is
restored the same way, so RL hands on what it did best on held-out prompts as the evaluation decodes them,
never a state whose evaluated text degenerated. It writes what it saw to ``report_path`` (JSON) when given.

Single process: every process would decode the probe set itself.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from transformers import TrainerCallback

from rrg_trl.evaluation.decoding import Decoding
from rrg_trl.metrics.degeneracy import degeneracy

PREFIX = "decoding_guard/"
WATCHED = ("repeated_trigram_fraction", "identical_report_share")


class DecodingGuardCallback(TrainerCallback):
    """Decode ``probe`` (rows with ``prompt`` and ``image``) as the evaluation does; stop on degeneration."""

    def __init__(
        self,
        probe: Any,
        decoding: Decoding,
        *,
        every_n_steps: int = 10,
        batch_size: int = 16,
        tolerances: dict[str, float] | None = None,
        restore: bool = True,
        reward: Callable[[Sequence[str], Sequence[str]], Sequence[float | None]] | None = None,
        report_path: str | Path | None = None,
    ):
        if every_n_steps < 1:
            raise ValueError(f"every_n_steps must be >= 1, got {every_n_steps}")
        if len(probe) < 2:
            raise ValueError(f"the probe set needs at least 2 prompts to measure sameness, got {len(probe)}")
        unknown = set(tolerances or {}) - set(WATCHED)
        if unknown:
            raise ValueError(f"tolerances for unknown figures {sorted(unknown)}; known: {list(WATCHED)}")
        self.probe, self.decoding, self.every_n_steps = probe, decoding, every_n_steps
        self.batch_size, self.restore, self.reward = batch_size, restore, reward
        self.tolerances = {key: 0.0 for key in WATCHED} | dict(tolerances or {})
        self.report_path = Path(report_path) if report_path is not None else None
        self.baseline: dict[str, Any] | None = None
        self.checks: list[dict[str, Any]] = []
        self.stopped_at: int | None = None
        self.restored_step: int | None = None
        self._good_state: dict[str, Any] | None = None
        self._good_step = 0
        self._good_rewards: list[float | None] | None = None
        self._rewards: list[float | None] | None = None
        self._pending: dict[str, Any] | None = None

    def measure(self, model: Any, processor: Any) -> dict[str, Any]:
        """The probe set's degeneracy figures under the evaluation's decoding (the model left as it was)."""
        from rrg_trl.evaluation.generation import generate_reports

        was_training = model.training
        model.eval()
        try:
            reports = generate_reports(
                model,
                processor,
                self.probe,
                batch_size=self.batch_size,
                progress=False,
                **self.decoding.generate_kwargs(),
            )
        finally:
            model.train(was_training)
        figures: dict[str, Any] = degeneracy(reports)
        if self.reward is not None:
            self._rewards = list(self.reward(reports, self.probe["report"]))
            scored = [r for r in self._rewards if r is not None]
            figures["reward"] = sum(scored) / len(scored) if scored else None
        return figures

    def degenerate(self, figures: dict[str, Any]) -> list[str]:
        """The watched figures that rose above the baseline by more than their tolerance."""
        return [
            key
            for key in WATCHED
            if figures[key] is not None and figures[key] > self.baseline[key] + self.tolerances[key]
        ]

    def on_train_begin(self, args, state, control, model=None, processing_class=None, **kwargs):
        self.baseline = self.measure(model, processing_class)
        self._keep(model, state.global_step)
        self._pending = self.baseline

    def on_step_end(self, args, state, control, model=None, processing_class=None, **kwargs):
        if state.global_step % self.every_n_steps:
            return
        figures = self.measure(model, processing_class)
        risen = self.degenerate(figures)
        self.checks.append({"step": state.global_step, **figures, "degenerate": risen})
        self._pending = figures
        control.should_log = True
        if not risen:
            if self._better():
                self._keep(model, state.global_step)
            return
        self.stopped_at = state.global_step
        control.should_training_stop = True

    def _better(self) -> bool:
        """Whether the state just measured beats the kept one on the probe beyond the paired standard error."""
        from rrg_trl.evaluation.ablation import paired_gap

        if self.reward is None or self._good_rewards is None:
            return True  # no reward: keep the latest passing state
        gain = paired_gap(self._rewards, self._good_rewards)
        return gain["gap"] is not None and gain["gap"] > (gain["sem"] or 0.0)

    def _keep(self, model: Any, step: int) -> None:
        self._good_state, self._good_step = self._snapshot(model), step
        self._good_rewards = self._rewards

    def on_log(self, args, state, control, logs=None, **kwargs):
        if logs is None or self._pending is None:
            return
        values = {f"{PREFIX}{key}": value for key, value in self._pending.items() if value is not None}
        if self.stopped_at is not None:
            values[f"{PREFIX}stopped"] = 1.0
        logs.update(values)
        # Trainer.log has already appended a copy of ``logs`` to the history: keep it in step.
        if state.log_history and state.log_history[-1].get("step") == state.global_step:
            state.log_history[-1].update(values)
        self._pending = None

    def on_train_end(self, args, state, control, model=None, **kwargs):
        if self.restore and self._good_state is not None and self._good_step != state.global_step:
            model.load_state_dict(self._good_state)
            self.restored_step = self._good_step
        if self.report_path is not None:
            self.report_path.parent.mkdir(parents=True, exist_ok=True)
            self.report_path.write_text(json.dumps(self.report(), indent=2) + "\n", encoding="utf-8")

    def report(self) -> dict[str, Any]:
        """What the guard saw: the decoding, the baseline, every check, and whether it stopped / restored."""
        return {
            "decoding": self.decoding.describe(),
            "probe_size": len(self.probe),
            "every_n_steps": self.every_n_steps,
            "tolerances": self.tolerances,
            "baseline": self.baseline,
            "checks": self.checks,
            "stopped_at_step": self.stopped_at,
            "restored_step": self.restored_step,
        }

    def _snapshot(self, model: Any) -> dict[str, Any] | None:
        if not self.restore:
            return None
        return {name: tensor.detach().clone() for name, tensor in model.state_dict().items()}
