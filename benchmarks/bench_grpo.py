"""Time per GRPO step and the share of it spent waiting for rewards: remote server vs in-process scorer.

Runs the real stage (``rrg_trl.grpo`` on ``recipes/tiny/grpo.yaml``) twice on the same tiny policy and data:

- ``remote``: the reward server started as users run it (``rrg-reward serve`` in its own process, loopback);
- ``in-process``: the same scorer inside the trainer (``--reward_model_dir``, one scoring thread).

Both numbers come from what the trainer itself logs, so a user reads the same on a real run: ``step_time``
(TRL: one optimizer step including generation, scoring and the update) and ``reward_server/latency_s``
(rrg_trl.rewards: the wait for one batch's rewards), plus the peak memory the trainer logs
(rrg_trl.memory_logging: process RSS, and the GPU's allocated / reserved peak on CUDA). The first ``--warmup`` steps are dropped. Goal: the
reward is at most 5% of the step time (it is not overlapped with generation in TRL's GRPOTrainer, so every
millisecond of it adds to the step).

    python benchmarks/bench_grpo.py                               # tiny policy + tiny scorer kit, CPU
    python benchmarks/bench_grpo.py --scorer-size base --steps 12 --json bench_grpo.json
    python benchmarks/bench_grpo.py --url http://gpu0:8000 --modes remote   # an already running server
    python benchmarks/bench_grpo.py --device cuda --accelerate-config recipes/accelerate/zero2.yaml  # ZeRO-2
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from machine import device_name

from reward_server.service.local import LocalRewardServer

REPO = Path(__file__).resolve().parents[1]
GOAL_SHARE = 0.05


def run_grpo(work: Path, mode: str, policy: Path, args: argparse.Namespace, reward: list[str]) -> dict:
    """One GRPO run; per-step numbers from the trainer's own log history."""
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
        argv += ["--use_cpu", "false", "--bf16", "true"]  # bf16 autocast, as the GPU recipes and configs run
    if args.policy_size == "3b":
        # Weights in the dtype the real checkpoint ships in, images at the size CXR pipelines feed.
        argv += ["--dtype", "bfloat16", "--image_size", "448"]
    start = time.perf_counter()
    if args.accelerate_config:
        history = _launch(work, mode, argv, args)
    else:
        from rrg_trl import grpo

        history = grpo.run(argv).trainer.state.log_history
    wall = time.perf_counter() - start
    history = [h for h in history if "step_time" in h][args.warmup :]
    if not history:
        raise RuntimeError(f"{mode}: no step was logged after the {args.warmup} warm-up step(s)")
    steps = [h["step_time"] for h in history]
    waits = [h.get("reward_server/latency_s", float("nan")) for h in history]
    row = {
        "mode": mode,
        "launcher": f"accelerate {Path(args.accelerate_config).stem} x{args.num_processes}"
        if args.accelerate_config
        else "python",
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
    # Peak memory of the (main) trainer process, as rrg_trl.memory_logging logs it: high-water marks.
    row.update({k: v for k, v in history[-1].items() if k.startswith("memory/")})
    row["meets_goal"] = row["reward_share"] <= GOAL_SHARE
    return row


def _launch(work: Path, mode: str, argv: list[str], args: argparse.Namespace) -> list[dict]:
    """The documented launch line (``accelerate launch --config_file ... -m rrg_trl.grpo``); its log history."""
    cmd = [
        sys.executable,
        "-m",
        "accelerate.commands.launch",
        "--config_file",
        str(args.accelerate_config),
        "--num_processes",
        str(args.num_processes),
    ]
    if args.device == "cpu":
        cmd += ["--mixed_precision", "no", "--cpu"]
    cmd += ["-m", "rrg_trl.grpo", *argv]
    log = work / f"grpo-{mode}.log"
    with log.open("w") as f:
        proc = subprocess.run(cmd, cwd=REPO, stdout=f, stderr=subprocess.STDOUT, check=False)
    if proc.returncode != 0:
        tail = log.read_text()[-4000:]
        raise RuntimeError(f"{mode}: accelerate launch exited {proc.returncode}:\n{tail}")
    state = json.loads((work / f"grpo-{mode}" / "trainer_state.json").read_text())
    return state["log_history"]


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
        "--policy-size",
        choices=["tiny", "3b"],
        default="tiny",
        help="3b: the real Qwen2.5-VL-3B shape, random, bf16, 448 px images (GPU; implies --family qwen2_5_vl)",
    )
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
    p.add_argument(
        "--accelerate-config",
        type=Path,
        default=None,
        help="launch each run as users do: accelerate launch --config_file THIS (e.g. recipes/accelerate/zero2.yaml)",
    )
    p.add_argument("--num-processes", type=int, default=1, help="processes for --accelerate-config")
    p.add_argument("--json", type=Path, default=None, help="write the rows as JSON here")
    args = p.parse_args(argv)
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    if args.policy_size == "3b":
        args.family = "qwen2_5_vl"
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
        policy = make_tiny_policy(work / "policy", family=args.family, size=args.policy_size)
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
        "device_name": device_name(args.device),
        "launcher": rows[0]["launcher"] if rows else None,
        "policy": f"{args.policy_size} {args.family}",
        "torch_threads": args.threads,
        "goal_reward_share": GOAL_SHARE,
    }
    print(
        f"GRPO step time vs reward wait ({info['policy']}, scorer {info['scorer']}, {info['device_name']}, "
        f"{args.batch} completions/step, {args.steps} steps after {args.warmup} warm-up)"
    )
    print(
        f"{'mode':<11} {'step s':>8} {'reward s':>9} {'share':>7} {'goal<=5%':>9} {'failed':>7} "
        f"{'peak RSS GiB':>13} {'peak GPU GiB':>13}"
    )
    for r in rows:
        gpu = r.get("memory/peak_gpu_reserved_gib")
        print(
            f"{r['mode']:<11} {r['step_time_s_mean']:>8.3f} {r['reward_wait_s_mean']:>9.4f} "
            f"{r['reward_share']:>7.1%} {'yes' if r['meets_goal'] else 'NO':>9} {r['failed_batches']:>7.0f} "
            f"{r.get('memory/peak_rss_gib', float('nan')):>13.2f} {'-' if gpu is None else f'{gpu:.2f}':>13}"
        )
    if args.json:
        args.json.write_text(json.dumps({"info": info, "rows": rows}, indent=2) + "\n")
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
