"""verl reward throughput: per-sample vs batch, through verl's own managers, side by side in one run.

Three ways verl can call ``reward_server/integrations/verl.py`` against one loopback reward server, each on
its own fresh GRPO-shaped batches (``--refs`` references x ``--group`` responses, so no mode profits from
another's feature cache), one warm-up batch each, then ``--rounds`` measured:

- ``naive``: ``NaiveRewardManager`` + ``compute_score`` -- one synchronous request per sample;
- ``reward loop``: verl >= 0.7's ``RewardLoopWorker.compute_score_batch`` (its naive manager) +
  ``compute_score_async``, every sample of the batch in flight at once (the server's batcher coalesces them);
- ``batch``: ``BatchRewardManager`` + ``compute_score_batch`` -- one request for the whole batch.

    python benchmarks/bench_verl.py                                  # tiny kit, CPU
    python benchmarks/bench_verl.py --size base --device cuda --refs 32 --group 8
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from pathlib import Path

import torch
from machine import device_name

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from reward_server.service.local import LocalRewardServer  # noqa: E402
from reward_server.tinykit.corpus import synthetic_reports  # noqa: E402
from tests.reward_server.integrations.verl_data import custom_reward_config, make_batch  # noqa: E402

FUNCTIONS = {"naive": "compute_score", "reward loop": "compute_score_async", "batch": "compute_score_batch"}
MODES = tuple(FUNCTIONS)


def batches(tokenizer, n: int, refs: int, group: int, seed: int) -> list:
    pool = synthetic_reports(n * refs * (group + 1), seed=seed)
    out = []
    for b in range(n):
        texts = pool[b * refs * (group + 1) : (b + 1) * refs * (group + 1)]
        references = [t for t in texts[:refs] for _ in range(group)]
        out.append(make_batch(tokenizer, texts[refs:], references))
    return out


def runner(mode: str, tokenizer, path: str, policy_dir: str):
    """A callable scoring one DataProto the way ``mode`` does in verl."""
    from verl.trainer.ppo.reward import get_custom_reward_fn

    name = FUNCTIONS[mode]
    if mode == "reward loop":
        from verl.experimental.reward_loop.reward_loop import RewardLoopWorker

        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        worker = RewardLoopWorker(custom_reward_config(path, name, policy_dir))
        return lambda data: loop.run_until_complete(worker.compute_score_batch(data))
    fn = get_custom_reward_fn(custom_reward_config(path, name))
    if mode == "naive":
        from verl.workers.reward_manager import NaiveRewardManager

        return NaiveRewardManager(tokenizer, num_examine=0, compute_score=fn)
    from verl.workers.reward_manager import BatchRewardManager

    return BatchRewardManager(tokenizer, num_examine=0, compute_score=fn)


def measure(mode: str, tokenizer, path: str, policy_dir: str, data: list) -> dict:
    run = runner(mode, tokenizer, path, policy_dir)
    run(data[0])  # warm-up: connections, /v1/info
    start = time.perf_counter()
    for d in data[1:]:
        run(d)
    wall = time.perf_counter() - start
    samples = sum(len(d) for d in data[1:])
    return {"mode": mode, "samples": samples, "wall_s": wall, "samples_per_s": samples / wall}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--size", choices=["tiny", "base"], default="tiny")
    p.add_argument("--device", default="cpu")
    p.add_argument("--refs", type=int, default=4, help="references (prompts) per batch")
    p.add_argument("--group", type=int, default=8, help="responses per reference")
    p.add_argument("--rounds", type=int, default=4, help="measured batches per mode")
    args = p.parse_args(argv)

    from reward_server.integrations import verl as reward_file
    from reward_server.tinykit import make_tiny
    from rrg_trl.modeling.tiny import make_tokenizer

    tokenizer = make_tokenizer("qwen2_5_vl")
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = make_tiny(Path(tmp) / "kit", size=args.size)
        policy_dir = str(Path(tmp) / "policy")  # the reward loop worker loads the policy's tokenizer from it
        tokenizer.save_pretrained(policy_dir)
        with LocalRewardServer(model_dir, device=args.device) as server:
            os.environ["RRG_REWARD_URLS"] = server.url
            rows = [
                measure(
                    mode,
                    tokenizer,
                    reward_file.__file__,
                    policy_dir,
                    batches(tokenizer, args.rounds + 1, args.refs, args.group, seed),
                )
                for seed, mode in enumerate(MODES, start=100)
            ]
    base = rows[0]["samples_per_s"]
    print(
        f"verl {__import__('verl').__version__}, batches of {args.refs}x{args.group}, {args.rounds} rounds, "
        f"kit={args.size}, device={args.device} on {device_name(args.device)}"
    )
    print("| manager | function | samples/s | vs naive |\n|---|---|---:|---:|")
    for r in rows:
        print(
            f"| {r['mode']} | `{FUNCTIONS[r['mode']]}` | {r['samples_per_s']:.1f} | {r['samples_per_s'] / base:.2f}x |"
        )
    return 0


if __name__ == "__main__":
    torch.set_num_threads(min(2, torch.get_num_threads()))
    sys.exit(main())
