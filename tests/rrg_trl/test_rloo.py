"""rrg_trl.rloo end to end: from the SFT adapter against the live reward server, then resumed."""

from __future__ import annotations

import json
import math

from rrg_trl import rloo
from tests.rrg_trl.stage_helpers import StepCounter, logged, run_stage, stage_argv


def test_rloo_from_the_sft_adapter_then_resumes(sft_runs, reward_server, tmp_path):
    out = tmp_path / "rloo"

    def argv(max_steps: int) -> list[str]:
        return stage_argv(
            "rloo",
            out,
            "--model_name_or_path",
            str(sft_runs.out),
            "--reward_urls",
            reward_server.url,
            "--max_steps",
            str(max_steps),
            "--save_steps",
            "2",
        )

    pairs_before = reward_server.state.batcher.stats.pairs
    first = rloo.run(argv(2))
    assert first.stage == "rloo" and first.global_step == 2 and first.resumed_from is None
    assert reward_server.state.batcher.stats.pairs - pairs_before == 2 * 4
    for key in ("rewards/radcliq/mean", "rewards/semb/mean", "reward", "guards/penalized"):
        values = logged(first, key)
        assert len(values) == 2 and all(math.isfinite(v) for v in values), key
    assert first.trainer.reward_weights.tolist() == [1.0], "the components are logged, not weight-0 rewards"
    assert (out / "adapter_config.json").is_file()

    counter = StepCounter()
    second = run_stage(rloo, argv(3), counter.callback)
    assert second.resumed_from == str(out / "checkpoint-2")
    assert second.global_step == 3 and counter.steps == [3], "only the missing step runs after resuming"
    assert json.loads((out / "run_info.json").read_text())["global_step"] == 3
