"""What Ray Serve costs on one node and what it buys: the plain server vs 1 and 2 Ray Serve replicas.

The same GRPO-like load as ``bench_server.py`` (N trainers, each one request of ``refs`` x ``group`` pairs
per round, rounds synchronised), in one run and on fresh texts per row, against ``rrg-reward serve`` (one
process) and the same app on Ray Serve with 1 and then 2 replicas behind Serve's HTTP proxy. The plain server
stays up throughout and each Ray run follows the same load on it; rows are medians of ``--repeats`` such
alternating runs, so load from elsewhere on the machine hits both sides alike. Every scorer gets
``--threads-per-scorer`` torch threads (Ray gives each replica ``OMP_NUM_THREADS`` = its CPUs), so one plain
server vs one replica isolates the proxy's cost, and two replicas show what a second scorer process buys.

    python benchmarks/bench_ray_serve.py                                   # tiny kit, CPU
    python benchmarks/bench_ray_serve.py --size base --device cuda --gpus-per-replica 0.5
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from bench_server import make_requests, run_server_load
from machine import device_name

from reward_server.service.local import LocalRewardServer, free_port, wait_ready


def _row(mode: str, url: str, n: int, args, seed: int) -> dict:
    reqs = make_requests(n, args.rounds, args.refs, args.group, seed=seed)
    # Ray's /v1/info is one replica's: batch sizes are only reported for the single-process server.
    stats = asyncio.run(run_server_load(url, None, reqs, batch_stats=mode == "plain"))
    print(
        f"  {mode:<8} trainers={n:<3} pairs/s={stats['pairs_per_s']:.1f} p99={stats['p99_ms']:.0f} ms",
        flush=True,
    )
    return {"mode": mode, "trainers": n, **stats}


def _median(runs: list[dict]) -> dict:
    """Per-field medians over the repeats (noise from other work on the machine hits single runs)."""
    out = dict(runs[0], repeats=len(runs))
    for key, value in runs[0].items():
        if isinstance(value, float):
            out[key] = float(np.median([r[key] for r in runs]))
    return out


def _warm(url: str, args) -> None:
    asyncio.run(
        run_server_load(url, None, make_requests(1, 2, args.refs, args.group, seed=999), batch_stats=False)
    )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--size", choices=["tiny", "base"], default="tiny")
    p.add_argument("--device", default="cpu")
    p.add_argument("--trainers", default="1,4,16")
    p.add_argument("--refs", type=int, default=2)
    p.add_argument("--group", type=int, default=8)
    p.add_argument("--rounds", type=int, default=8)
    p.add_argument(
        "--repeats", type=int, default=3, help="alternating plain/Ray runs per row; medians reported"
    )
    p.add_argument("--threads-per-scorer", type=int, default=1)
    p.add_argument("--gpus-per-replica", type=float, default=0.0)
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args(argv)
    counts = [int(x) for x in args.trainers.split(",")]
    os.environ["OMP_NUM_THREADS"] = str(args.threads_per_scorer)

    import ray
    from ray import serve

    from reward_server.ray import RayServeConfig, build_app
    from reward_server.service.app import ServerSettings
    from reward_server.tinykit import make_tiny

    rows: list[dict] = []
    with tempfile.TemporaryDirectory() as tmp:
        kit = make_tiny(Path(tmp) / "kit", size=args.size)
        port = free_port()
        ray_url = f"http://127.0.0.1:{port}"
        # The plain server stays up throughout: each Ray row is measured right after its plain twin (same
        # request shapes, fresh texts), so load from elsewhere on the machine hits both alike.
        with LocalRewardServer(kit, device=args.device) as plain:
            _warm(plain.url, args)
            ray.init(num_cpus=max(2, os.cpu_count() or 2), include_dashboard=False, log_to_driver=False)
            try:
                serve.start(http_options={"host": "127.0.0.1", "port": port})
                for replicas in (1, 2):
                    config = RayServeConfig(
                        scorer={"model_dir": str(kit), "device": args.device},
                        settings=ServerSettings(port=port),
                        num_replicas=replicas,
                        num_cpus_per_replica=args.threads_per_scorer,
                        num_gpus_per_replica=args.gpus_per_replica,
                        log_level="warning",
                    )
                    serve.delete("rrg-reward")  # a rolling update would need room for old and new replicas
                    start = time.perf_counter()
                    serve.run(build_app(config), name="rrg-reward", route_prefix="/")
                    wait_ready(ray_url, timeout_s=300)
                    print(
                        f"ray serve: {replicas} replica(s) up in {time.perf_counter() - start:.1f}s",
                        flush=True,
                    )
                    _warm(ray_url, args)
                    for i, n in enumerate(counts):
                        seeds = [1000 * replicas + 100 * i + 2 * r for r in range(args.repeats)]
                        twins = [
                            (
                                _row("plain", plain.url, n, args, seed),
                                _row(f"ray-{replicas}", ray_url, n, args, seed + 1),
                            )
                            for seed in seeds
                        ]
                        rows.append(_median([t[0] for t in twins]) | {"paired_with": f"ray-{replicas}"})
                        rows.append(_median([t[1] for t in twins]))
            finally:
                serve.shutdown()
                ray.shutdown()
    _print(rows, args)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))
    return 0


def _print(rows: list[dict], args) -> None:
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    print(
        f"\nGRPO-like load: {args.refs} refs x {args.group} hypotheses per request, {args.rounds} rounds, "
        f"size={args.size}, {args.threads_per_scorer} torch thread(s) per scorer, on {device_name(device)}"
    )
    head = f"{'mode':<9}{'trainers':>9}{'pairs/s':>9}{'p50_ms':>8}{'p99_ms':>8}{'batch':>7}  paired with"
    print(head + "\n" + "-" * len(head))
    for r in rows:
        batch = f"{r['mean_batch_pairs']:.1f}" if r["mean_batch_pairs"] is not None else "-"
        print(
            f"{r['mode']:<9}{r['trainers']:>9}{r['pairs_per_s']:>9.1f}{r['p50_ms']:>8.1f}{r['p99_ms']:>8.1f}{batch:>7}"
            f"  {r.get('paired_with', '')}"
        )


if __name__ == "__main__":
    sys.exit(main())
