"""``rrg-reward``: serve RadCliQ over HTTP, build or fetch the model directory, score files offline.

rrg-reward serve --model-dir DIR [--device cuda|cpu] [--host 127.0.0.1] [--port 8000] ...
rrg-reward serve --ray --model-dir DIR [--num-replicas N | --min-replicas A --max-replicas B]
                 [--num-gpus-per-replica G] [--ray-address HEAD:6379] ...   (needs the ray extra)
rrg-reward make-tiny DIR [--seed 0] [--size tiny|base]
rrg-reward download DIR [--revision REV] [--cache-dir DIR]
rrg-reward score --model-dir DIR (--hypotheses FILE --references FILE | --jsonl FILE) [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path

from reward_server.completions import CompletionExtractor
from reward_server.radcliq.composite import to_reward
from reward_server.radcliq.model_files import RANDOM_WEIGHTS_NOTICE, random_weights_fields
from reward_server.service.app import ServerSettings

_DEFAULTS = ServerSettings()
# (flag, ServerSettings field, help) of the `rrg-reward serve` flags that set one field each, typed as its default.
_SETTING_FLAGS = (
    ("--host", "host", "bind address; non-loopback requires --api-key-env"),
    ("--port", "port", None),
    ("--max-batch-pairs", "max_batch_pairs", "most pairs per scorer batch (the GPU memory bound)"),
    ("--max-wait-ms", "max_wait_ms", "how long the first queued request waits for others to join its batch"),
    ("--max-pairs-per-request", "max_pairs_per_request", None),
    ("--max-text-chars", "max_text_chars", None),
    ("--max-queue-pairs", "max_queue_pairs", "pairs waiting beyond this answer 503 with Retry-After"),
    ("--max-body-bytes", "max_body_bytes", None),
    ("--retry-after-s", "retry_after_s", None),
    (
        "--graceful-timeout-s",
        "timeout_graceful_shutdown_s",
        "on SIGTERM, how long to keep finishing queued work",
    ),
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rrg-reward", description="Batched RadCliQ reward: library and service."
    )
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the HTTP reward service (FastAPI + uvicorn)")
    _add_model_args(serve)
    for flag, name, help_ in _SETTING_FLAGS:
        default = getattr(_DEFAULTS, name)
        serve.add_argument(flag, type=type(default), default=default, help=help_)
    serve.add_argument(
        "--api-key-env",
        metavar="VAR",
        default=None,
        help="require 'Authorization: Bearer $VAR' on every /v1 and /metrics request",
    )
    serve.add_argument(
        "--openrlhf-strip",
        metavar="TEXT",
        action="append",
        default=[],
        help="trailing text removed from OpenRLHF completions, on top of the common EOS / end-of-turn / "
        "padding texts (GET /v1/info lists them all); repeatable",
    )
    serve.add_argument(
        "--policy-tokenizer",
        metavar="DIR",
        default=None,
        help="the policy's tokenizer or processor directory: its special tokens are stripped from OpenRLHF "
        "completions too, and its image token counts as a placeholder",
    )
    serve.add_argument(
        "--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"]
    )
    _add_ray_args(serve)

    tiny = sub.add_parser("make-tiny", help="write the tiny random-weight scorer kit (tests, offline demo)")
    tiny.add_argument("dir", type=Path)
    tiny.add_argument("--seed", type=int, default=0)
    tiny.add_argument(
        "--size",
        choices=["tiny", "base"],
        default="tiny",
        help="base = real architecture sizes with random weights (benchmarks)",
    )

    download = sub.add_parser("download", help="fetch the official weights from the Hugging Face hub")
    download.add_argument("dir", type=Path)
    download.add_argument("--revision", default=None, help="revision of StanfordAIMI/RRG_scorers to fetch")
    download.add_argument(
        "--cache-dir", default=None, help="hub cache to fetch through (default: HF_HUB_CACHE)"
    )

    score = sub.add_parser("score", help="score pairs offline (no server)")
    _add_model_args(score)
    score.add_argument("--hypotheses", type=Path, help="text file, one report per line")
    score.add_argument("--references", type=Path, help="text file, one report per line")
    score.add_argument(
        "--jsonl", type=Path, help="JSONL input with --hypothesis-key and --reference-key fields"
    )
    score.add_argument("--hypothesis-key", default="hypothesis")
    score.add_argument("--reference-key", default="reference")
    score.add_argument("--out", type=Path, default=None, help="JSONL output (default: stdout)")
    score.add_argument("--batch-size", type=int, default=256)
    return parser


def _add_ray_args(serve: argparse.ArgumentParser) -> None:
    ray = serve.add_argument_group("Ray Serve (--ray; install rrg-trl[ray])")
    ray.add_argument(
        "--ray", action="store_true", help="deploy the same app as replicas on Ray Serve (one HTTP address)"
    )
    ray.add_argument(
        "--ray-address",
        default=None,
        help="join this Ray cluster (HEAD:6379, auto); default: start a local one",
    )
    ray.add_argument("--num-replicas", type=int, default=None, help="fixed replica count (default 1)")
    ray.add_argument("--min-replicas", type=int, default=None, help="autoscale between these bounds")
    ray.add_argument("--max-replicas", type=int, default=None)
    ray.add_argument(
        "--target-ongoing-requests", type=float, default=None, help="autoscaling target per replica (64)"
    )
    ray.add_argument(
        "--max-ongoing-requests", type=int, default=None, help="requests one replica takes at once (1024)"
    )
    ray.add_argument("--num-gpus-per-replica", type=float, default=None, help="GPUs per replica (0)")
    ray.add_argument("--num-cpus-per-replica", type=float, default=None, help="CPUs per replica (1)")
    ray.add_argument(
        "--ray-num-cpus", type=int, default=None, help="CPUs of the local cluster (default: all)"
    )
    ray.add_argument("--ray-app-name", default=None, help="the Serve application's name (rrg-reward)")
    ray.add_argument("--health-check-period-s", type=float, default=None)
    ray.add_argument(
        "--health-check-timeout-s", type=float, default=None, help="must exceed one scorer batch (30)"
    )


_RAY_ONLY = (
    "ray_address",
    "num_replicas",
    "min_replicas",
    "max_replicas",
    "target_ongoing_requests",
    "max_ongoing_requests",
    "num_gpus_per_replica",
    "num_cpus_per_replica",
    "ray_num_cpus",
    "ray_app_name",
    "health_check_period_s",
    "health_check_timeout_s",
)


def _add_model_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--model-dir", type=Path, required=True, help="scorer model directory (make-tiny / download)"
    )
    p.add_argument("--device", default=None, help="cuda, cuda:1, cpu (default: cuda when available)")
    p.add_argument("--dtype", choices=["float32", "bfloat16", "float16"], default="float32")
    p.add_argument("--radcliq-version", choices=["v1", "v0"], default="v1")
    p.add_argument("--idf", action="store_true", help="IDF-weighted BERTScore (per request)")
    p.add_argument("--no-verify", action="store_true", help="skip checking checksums.sha256 at load")
    p.add_argument(
        "--cache-size",
        type=int,
        default=4096,
        help="texts whose features (token embeddings, [CLS], RadGraph sets) stay cached; 0 disables",
    )


def _scorer_kwargs(args: argparse.Namespace) -> dict:
    """``RadCliQScorer.from_pretrained`` keyword arguments from the model flags."""
    return {
        "model_dir": str(args.model_dir),
        "device": args.device,
        "version": args.radcliq_version,
        "idf": args.idf,
        "dtype": args.dtype,
        "verify": not args.no_verify,
        "cache_size": args.cache_size,
    }


def _load_scorer(args: argparse.Namespace):
    from reward_server import RadCliQScorer

    return RadCliQScorer.from_pretrained(**_scorer_kwargs(args))


def _serve(args: argparse.Namespace) -> int:
    from reward_server.service.app import check_bind, serve

    api_key = None
    if args.api_key_env:
        api_key = os.environ.get(args.api_key_env)
        if not api_key:
            raise SystemExit(
                f"rrg-reward: --api-key-env {args.api_key_env}: that environment variable is unset or empty"
            )
    settings = ServerSettings(
        **{name: getattr(args, flag[2:].replace("-", "_")) for flag, name, _ in _SETTING_FLAGS},
        api_key=api_key,
        openrlhf_strip=tuple(args.openrlhf_strip),
        policy_tokenizer=str(args.policy_tokenizer) if args.policy_tokenizer else None,
    )
    try:
        settings.validate()
        check_bind(settings)  # before loading weights: fail in a second, not a minute
        CompletionExtractor.build(settings.openrlhf_strip, settings.policy_tokenizer)
    except ValueError as e:
        raise SystemExit(f"rrg-reward: {e}") from None
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    if args.ray:
        return _serve_ray(args, settings)
    given = [f"--{name.replace('_', '-')}" for name in _RAY_ONLY if getattr(args, name) is not None]
    if given:
        raise SystemExit(f"rrg-reward serve: {', '.join(given)} only apply with --ray")
    scorer = _load_scorer(args)
    serve(scorer, settings, log_level=args.log_level)
    return 0


def _serve_ray(args: argparse.Namespace, settings: ServerSettings) -> int:
    try:
        import ray  # noqa: F401

        from reward_server.ray import config_from, serve_ray
    except ImportError as e:
        raise SystemExit(
            f"rrg-reward serve --ray needs Ray Serve: pip install 'rrg-trl[ray]' ({e})"
        ) from None
    keys = [k for k in _RAY_ONLY if k not in ("ray_address", "ray_num_cpus", "ray_app_name")]
    config = config_from(
        _scorer_kwargs(args),
        settings,
        app_name=args.ray_app_name,
        log_level=args.log_level,
        **{k: getattr(args, k) for k in keys},
    )
    try:
        config.validate()
    except ValueError as e:
        raise SystemExit(f"rrg-reward: {e}") from None
    serve_ray(config, address=args.ray_address, num_cpus=args.ray_num_cpus)
    return 0


def _read_pairs(args: argparse.Namespace) -> tuple[list[str], list[str], list[dict] | None]:
    if args.jsonl is not None:
        if args.hypotheses or args.references:
            raise SystemExit("rrg-reward score: give either --jsonl or --hypotheses/--references, not both")
        rows, hyps, refs = [], [], []
        for n, line in enumerate(args.jsonl.read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip():
                continue
            row = json.loads(line)
            for key in (args.hypothesis_key, args.reference_key):
                if not isinstance(row.get(key), str):
                    raise SystemExit(f"rrg-reward score: {args.jsonl}:{n}: field {key!r} must be a string")
            rows.append(row)
            hyps.append(row[args.hypothesis_key])
            refs.append(row[args.reference_key])
        return hyps, refs, rows
    if not (args.hypotheses and args.references):
        raise SystemExit("rrg-reward score: give --hypotheses FILE and --references FILE, or --jsonl FILE")
    hyps = args.hypotheses.read_text(encoding="utf-8").splitlines()
    refs = args.references.read_text(encoding="utf-8").splitlines()
    if len(hyps) != len(refs):
        raise SystemExit(
            f"rrg-reward score: {args.hypotheses} has {len(hyps)} lines but {args.references} has {len(refs)}"
        )
    return hyps, refs, None


def _score(args: argparse.Namespace) -> int:
    hyps, refs, rows = _read_pairs(args)
    scorer = _load_scorer(args)
    label = random_weights_fields(
        scorer.random_weights
    )  # on every row: these numbers may come from a test kit
    if scorer.random_weights:
        print(f"rrg-reward score: {RANDOM_WEIGHTS_NOTICE}", file=sys.stderr)
    out = open(args.out, "w", encoding="utf-8") if args.out else sys.stdout  # noqa: SIM115
    try:
        for start in range(0, len(hyps), args.batch_size):
            stop = start + args.batch_size
            scored = scorer.score(hyps[start:stop], refs[start:stop])
            for i, s in enumerate(scored, start):
                record = dict(rows[i]) if rows is not None else {"index": i}
                record.update(s)
                record["reward"] = to_reward(s["radcliq"])
                record.update(label)
                out.write(json.dumps(record, ensure_ascii=False) + "\n")
    finally:
        if out is not sys.stdout:
            out.close()
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "serve":
        return _serve(args)
    if args.command == "make-tiny":
        from reward_server.tinykit import make_tiny

        print(make_tiny(args.dir, seed=args.seed, size=args.size))
        return 0
    if args.command == "download":
        from reward_server.radcliq.model_files import HubUnreachable, download

        try:
            print(download(args.dir, revision=args.revision, cache_dir=args.cache_dir))
        except HubUnreachable as error:
            print(f"rrg-reward download: {error}", file=sys.stderr)
            return 1
        return 0
    return _score(args)


if __name__ == "__main__":
    sys.exit(main())
