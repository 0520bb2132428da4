"""Reward-server throughput and latency under GRPO-like load.

N trainers (ranks) each send, once per round and at the same moment as the others (GRPO gathers rewards
across ranks every step), one request of ``refs`` references x ``group`` hypotheses. Reported per
configuration: requests/s, pairs/s, p50/p99 request latency and the server's mean batch size; plus the
in-process baseline (the same requests scored one after another without HTTP, as a single trainer would).

    python benchmarks/bench_server.py                          # tiny kit, CPU, loopback server
    python benchmarks/bench_server.py --size base --device cuda --trainers 1,8,32 --rounds 20
    python benchmarks/bench_server.py --url http://gpu0:8000   # an already running server
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import torch
from machine import device_name

from reward_server.client import AsyncRewardClient
from reward_server.service.local import LocalRewardServer
from reward_server.tinykit.corpus import synthetic_reports


def make_requests(
    trainers: int, rounds: int, refs: int, group: int, seed: int
) -> list[list[tuple[list, list]]]:
    """requests[round][trainer] = (hypotheses, references), fresh texts per round like a real run."""
    rng = random.Random(seed)
    pool = synthetic_reports(max(64, trainers * rounds * refs * group), seed=seed)
    out = []
    for _ in range(rounds):
        step = []
        for _ in range(trainers):
            references = [rng.choice(pool) for _ in range(refs)]
            hyps = [rng.choice(pool) for _ in range(refs * group)]
            step.append((hyps, [r for r in references for _ in range(group)]))
        out.append(step)
    return out


async def run_server_load(
    url: str, api_key: str | None, requests: list[list[tuple[list, list]]], batch_stats: bool = True
) -> dict:
    """Per-request latencies and throughput; ``batch_stats``: the mean server batch from ``/v1/info``
    (one process's counters, so only meaningful for a single server)."""
    clients = [
        AsyncRewardClient(url, api_key=api_key, retry_budget_s=120, max_pairs_per_request=1 << 20)
        for _ in requests[0]
    ]
    latencies: list[float] = []

    async def one(client, hyps, refs):
        start = time.perf_counter()
        await client.score(hyps, refs)
        latencies.append(time.perf_counter() - start)

    async with httpx.AsyncClient(headers={"Authorization": f"Bearer {api_key}"} if api_key else {}) as http:

        async def batcher() -> dict:
            return (await http.get(url + "/v1/info")).json()["server"]["batcher"] if batch_stats else {}

        before = await batcher()
        start = time.perf_counter()
        for step in requests:  # ranks are synchronised per step, as in GRPOTrainer
            await asyncio.gather(*(one(c, h, r) for c, (h, r) in zip(clients, step, strict=True)))
        wall = time.perf_counter() - start
        after = await batcher()
    for c in clients:
        await c.aclose()
    if not batch_stats:
        return _summary(requests, latencies, wall, None)
    batches = after["batches"] - before["batches"]
    return _summary(requests, latencies, wall, (after["pairs"] - before["pairs"]) / max(1, batches))


def run_in_process(scorer, requests: list[list[tuple[list, list]]]) -> dict:
    """Each request scored alone, one after another, in one worker thread -- how
    ``rrg_trl.rewards.RadCliQRewards(scorer=...)`` runs it inside a trainer."""
    latencies = []
    with ThreadPoolExecutor(max_workers=1) as pool:
        start = time.perf_counter()
        for step in requests:
            for hyps, refs in step:
                t = time.perf_counter()
                pool.submit(scorer.score, hyps, refs).result()
                latencies.append(time.perf_counter() - t)
        wall = time.perf_counter() - start
    return _summary(requests, latencies, wall, None)


def _summary(requests, latencies, wall, mean_batch) -> dict:
    n_req = sum(len(step) for step in requests)
    n_pairs = sum(len(h) for step in requests for h, _ in step)
    lat = np.asarray(latencies) * 1000
    return {
        "requests": n_req,
        "pairs": n_pairs,
        "wall_s": wall,
        "req_per_s": n_req / wall,
        "pairs_per_s": n_pairs / wall,
        "p50_ms": float(np.percentile(lat, 50)),
        "p99_ms": float(np.percentile(lat, 99)),
        "mean_batch_pairs": mean_batch,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument(
        "--model-dir", type=Path, default=None, help="default: a fresh kit of --size in a temp dir"
    )
    p.add_argument("--size", choices=["tiny", "base"], default="tiny")
    p.add_argument("--device", default=None)
    p.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"])
    p.add_argument("--url", default=None, help="benchmark a running server instead of starting one")
    p.add_argument("--api-key", default=os.environ.get("RRG_REWARD_API_KEY"))
    p.add_argument("--trainers", default="1,4,16", help="comma-separated concurrent trainer counts")
    p.add_argument("--refs", type=int, default=2, help="references (prompts) per request")
    p.add_argument("--group", type=int, default=8, help="hypotheses per reference (num_generations)")
    p.add_argument("--rounds", type=int, default=8)
    p.add_argument("--max-batch-pairs", type=int, default=256)
    p.add_argument("--max-wait-ms", type=float, default=5.0)
    p.add_argument("--no-in-process", action="store_true", help="skip the in-process baseline")
    p.add_argument("--json", type=Path, default=None, help="also write the rows as JSON")
    args = p.parse_args(argv)

    trainer_counts = [int(x) for x in args.trainers.split(",")]
    tmp = None
    model_dir = args.model_dir
    if model_dir is None and (args.url is None or not args.no_in_process):
        from reward_server.tinykit import make_tiny

        tmp = tempfile.TemporaryDirectory()
        model_dir = make_tiny(Path(tmp.name) / "kit", size=args.size)
    proc = None
    url = args.url
    if url is None:
        extra = [
            "--max-batch-pairs",
            str(args.max_batch_pairs),
            "--max-wait-ms",
            str(args.max_wait_ms),
            "--dtype",
            args.dtype,
        ]
        port = int(os.environ.get("RRG_BENCH_PORT", "0")) or None
        proc = LocalRewardServer(model_dir, *extra, port=port, device=args.device)
        proc.wait_ready(600)
        url = proc.url
    rows = []
    try:
        # Warm-up (allocator, kernels, tokenizers) so the first configuration is not penalised.
        asyncio.run(run_server_load(url, args.api_key, make_requests(1, 2, args.refs, args.group, seed=999)))
        scorer = None
        if not args.no_in_process:
            from reward_server import RadCliQScorer

            scorer = RadCliQScorer.from_pretrained(model_dir, device=args.device, dtype=args.dtype)
            run_in_process(scorer, make_requests(1, 2, args.refs, args.group, seed=999))
        # Interleaved, with fresh texts per row (no cache hits carried over), so drift hits both modes alike.
        for i, n in enumerate(trainer_counts):
            reqs = make_requests(n, args.rounds, args.refs, args.group, seed=i)
            rows.append(
                {"mode": "server", "trainers": n, **asyncio.run(run_server_load(url, args.api_key, reqs))}
            )
            if scorer is not None:
                reqs = make_requests(n, args.rounds, args.refs, args.group, seed=100 + i)
                rows.append({"mode": "in-process", "trainers": n, **run_in_process(scorer, reqs)})
    finally:
        if proc is not None:
            proc.stop(timeout_s=60)
        if tmp is not None:
            tmp.cleanup()
    _print(rows, args)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))
    return 0


def _print(rows: list[dict], args) -> None:
    print(
        f"\nGRPO-like load: {args.refs} refs x {args.group} hypotheses per request, {args.rounds} rounds, "
        f"max_batch_pairs={args.max_batch_pairs}, max_wait_ms={args.max_wait_ms}, size={args.size}, "
        f"device={args.device or 'auto'} on {device_name(args.device or ('cuda' if torch.cuda.is_available() else 'cpu'))}"
    )
    head = (
        f"{'mode':<11}{'trainers':>9}{'requests':>9}{'pairs':>7}{'wall_s':>8}{'req/s':>8}{'pairs/s':>9}"
        f"{'p50_ms':>8}{'p99_ms':>8}{'batch':>7}"
    )
    print(head)
    print("-" * len(head))
    for r in rows:
        batch = f"{r['mean_batch_pairs']:.1f}" if r["mean_batch_pairs"] is not None else "-"
        print(
            f"{r['mode']:<11}{r['trainers']:>9}{r['requests']:>9}{r['pairs']:>7}{r['wall_s']:>8.2f}"
            f"{r['req_per_s']:>8.1f}{r['pairs_per_s']:>9.1f}{r['p50_ms']:>8.1f}{r['p99_ms']:>8.1f}{batch:>7}"
        )


if __name__ == "__main__":
    sys.exit(main())
