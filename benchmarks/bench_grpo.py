"""Time per GRPO step and the share of it spent waiting for rewards: remote server vs in-process scorer.

Runs the real stage (``rrg_trl.grpo`` on ``recipes/tiny/grpo.yaml``) twice on the same tiny policy and data:

- ``remote``: the reward server started as users run it (``rrg-reward serve`` in its own process, loopback);
- ``in-process``: the same scorer inside the trainer (``--reward_model_dir``, one scoring thread).

Both numbers come from what the trainer itself logs, so a user reads the same on a real run: ``step_time``
(TRL: one optimizer step including generation, scoring and the update) and ``reward_server/latency_s``
(rrg_trl.rewards: the wait for one batch's rewards). The first ``--warmup`` steps are dropped. Goal: the
reward is at most 5% of the step time (it is not overlapped with generation in TRL's GRPOTrainer, so every
millisecond of it adds to the step).

    python benchmarks/bench_grpo.py                               # tiny policy + tiny scorer kit, CPU
    python benchmarks/bench_grpo.py --scorer-size base --steps 12 --json bench_grpo.json
    python benchmarks/bench_grpo.py --url http://gpu0:8000 --modes remote   # an already running server
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from reward_server.local import LocalRewardServer

REPO = Path(__file__).resolve().parents[1]
GOAL_SHARE = 0.05


def run_grpo(work: Path, mode: str, policy: Path, args: argparse.Namespace, reward: list[str]) -> dict:
    """One GRPO run; per-step numbers from the trainer's own log history."""
    from rrg_trl import grpo

    argv = [
        "--config",
        str(REPO / "recipes" / "tiny" / "grpo.yaml"),
        "--model_name_or_path",
        str(policy),
        "--output_dir",
        str(work / f"grpo-{mode}"),
        "--max_steps",
        str(args.steps + args.warmup),
        "--per_device_train_batch_size",
        str(args.batch),
        "--num_generations",
        str(args.num_generations),
        "--max_completion_length",
        str(args.max_completion_length),
        "--save_strategy",
        "no",
        "--resume_from_checkpoint",
        "false",
        "--logging_steps",
        "1",
        "--log_level",
        "warning",
        "--disable_tqdm",
        "true",
        *reward,
    ]
    if args.device != "cpu":
        argv += ["--use_cpu", "false"]
    start = time.perf_counter()
    result = grpo.run(argv)
    wall = time.perf_counter() - start
    history = [h for h in result.trainer.state.log_history if "step_time" in h][args.warmup :]
    steps = [h["step_time"] for h in history]
    waits = [h.get("reward_server/latency_s", float("nan")) for h in history]
    row = {
        "mode": mode,
        "steps": len(steps),
        "completions_per_step": args.batch,
        "step_time_s_mean": statistics.fmean(steps),
        "step_time_s_median": statistics.median(steps),
        "reward_wait_s_mean": statistics.fmean(waits),
        "reward_wait_s_median": statistics.median(waits),
        "reward_share": statistics.fmean(waits) / statistics.fmean(steps),
        "failed_batches": sum(h.get("reward_server/failed", 0) for h in history),
        "wall_s": wall,
    }
    row["meets_goal"] = row["reward_share"] <= GOAL_SHARE
    return row


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--modes", default="remote,in-process", help="comma-separated: remote, in-process")
    p.add_argument("--steps", type=int, default=6, help="measured steps per mode")
    p.add_argument("--warmup", type=int, default=1, help="first steps dropped (allocation, caches)")
    p.add_argument("--batch", type=int, default=8, help="completions per step (per_device_train_batch_size)")
    p.add_argument("--num-generations", type=int, default=4)
    p.add_argument("--max-completion-length", type=int, default=32)
    p.add_argument("--family", default="qwen2_vl", help="tiny policy family")
    p.add_argument(
        "--scorer-size",
        choices=["tiny", "base"],
        default="tiny",
        help="scorer kit: tiny, or base (real-shaped BERT-base / distilroberta encoders, random)",
    )
    p.add_argument("--model-dir", type=Path, default=None, help="scorer directory (default: a fresh kit)")
    p.add_argument("--url", default=None, help="use this running server for 'remote' instead of starting one")
    p.add_argument("--device", default="cpu", help="cpu or cuda (policy and in-process scorer)")
    p.add_argument("--threads", type=int, default=1, help="torch threads of the trainer process")
    p.add_argument("--json", type=Path, default=None, help="write the rows as JSON here")
    args = p.parse_args(argv)
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    unknown = set(modes) - {"remote", "in-process"}
    if unknown:
        p.error(f"unknown mode(s) {sorted(unknown)}")

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch

    torch.set_num_threads(args.threads)
    from reward_server.tinykit import make_tiny
    from rrg_trl.modeling import make_tiny_policy

    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-grpo-") as tmp:
        work = Path(tmp)
        policy = make_tiny_policy(work / "policy", family=args.family)
        model_dir = args.model_dir
        if model_dir is None and (args.url is None or "in-process" in modes):
            model_dir = make_tiny(work / "scorer", size=args.scorer_size)
        for mode in modes:
            if mode == "in-process":
                rows.append(
                    run_grpo(
                        work,
                        mode,
                        policy,
                        args,
                        ["--reward_model_dir", str(model_dir), "--reward_device", args.device],
                    )
                )
                continue
            proc = None
            if not args.url:  # its output is not interesting here; run_grpo waits for /ready itself
                env = {"OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
                proc = LocalRewardServer(
                    model_dir, device=args.device, log_path=work / "reward_server.log", env=env
                )
            url = args.url or proc.url
            try:
                rows.append(
                    run_grpo(
                        work, mode, policy, args, ["--reward_urls", url, "--reward_wait_timeout_s", "300"]
                    )
                )
            finally:
                if proc is not None:
                    proc.stop(timeout_s=60)

    info = {
        "device": args.device,
        "scorer": str(args.model_dir or f"tinykit:{args.scorer_size}"),
        "policy": f"tiny {args.family}",
        "torch_threads": args.threads,
        "goal_reward_share": GOAL_SHARE,
    }
    print(
        f"GRPO step time vs reward wait ({info['policy']}, scorer {info['scorer']}, {args.device}, "
        f"{args.batch} completions/step, {args.steps} steps after {args.warmup} warm-up)"
    )
    print(f"{'mode':<11} {'step s':>8} {'reward s':>9} {'share':>7} {'goal<=5%':>9} {'failed':>7}")
    for r in rows:
        print(
            f"{r['mode']:<11} {r['step_time_s_mean']:>8.3f} {r['reward_wait_s_mean']:>9.4f} "
            f"{r['reward_share']:>7.1%} {'yes' if r['meets_goal'] else 'NO':>9} {r['failed_batches']:>7.0f}"
        )
    if args.json:
        args.json.write_text(json.dumps({"info": info, "rows": rows}, indent=2) + "\n")
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
