"""``rrg-trl``: one command for every stage; the arguments after the subcommand go to that stage unchanged.

    rrg-trl sft  --config recipes/tiny/sft.yaml [--flag value ...]
    rrg-trl grpo --config recipes/tiny/grpo.yaml
    rrg-trl rloo --config recipes/tiny/rloo.yaml
    rrg-trl evaluate ...
    rrg-trl demo ...
    rrg-trl make-tiny-policy DIR [--family qwen2_vl] [--seed 0] [--size tiny|qlora|3b]

Each subcommand runs in this process (``python -m rrg_trl.<stage>`` is the same). For several processes or
GPUs use ``accelerate launch ... -m rrg_trl.<stage> --config ...`` (see recipes/README.md). Stages are
imported only when chosen, so ``rrg-trl --help`` does not load torch.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable

STAGES: dict[str, tuple[str, str]] = {
    "sft": ("rrg_trl.sft", "supervised warm start (TRL SFTTrainer)"),
    "grpo": ("rrg_trl.grpo", "GRPO on -RadCliQ (TRL GRPOTrainer)"),
    "rloo": ("rrg_trl.rloo", "RLOO on -RadCliQ (TRL RLOOTrainer)"),
    "evaluate": ("rrg_trl.evaluate", "generate on a split and compute the full metric table"),
    "demo": ("rrg_trl.demo", "offline end-to-end demo on the embedded tiny models"),
    "make-tiny-policy": ("rrg_trl.cli", "write a tiny random policy (offline test / demo default)"),
}


def make_tiny_policy_run(argv: list[str] | None = None):
    """``rrg-trl make-tiny-policy DIR``: :func:`rrg_trl.modeling.make_tiny_policy` from the command line."""
    from rrg_trl.modeling.tiny import FAMILIES, SIZES

    parser = argparse.ArgumentParser(
        prog="rrg-trl make-tiny-policy", description=make_tiny_policy_run.__doc__, allow_abbrev=False
    )
    parser.add_argument("dir", help="output directory (replaced if it exists)")
    parser.add_argument("--family", choices=FAMILIES, default="qwen2_vl")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--size",
        choices=SIZES,
        default="tiny",
        help="qlora: tiny, with decoder widths bitsandbytes can 4-bit quantise on any CPU; "
        "3b: the real Qwen2.5-VL-3B shape, random, bf16 (~6.9 GB; --family qwen2_5_vl; GPU benchmarks)",
    )
    args = parser.parse_args(argv)
    if args.size == "3b" and args.family != "qwen2_5_vl":
        parser.error(f"--size {args.size} is the Qwen2.5-VL-3B shape: use --family qwen2_5_vl")
    from rrg_trl.modeling import make_tiny_policy

    out = make_tiny_policy(args.dir, family=args.family, seed=args.seed, size=args.size)
    print(f"{args.size} {args.family} policy written to {out}")
    return out


def _runner(name: str) -> Callable:
    if name == "make-tiny-policy":
        return make_tiny_policy_run
    return importlib.import_module(STAGES[name][0]).run


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(
        prog="rrg-trl",
        description="Radiology report generation with TRL: sft -> grpo / rloo -> evaluate.",
        epilog="Run `rrg-trl <command> --help` for a command's options.",
    )
    parser.add_argument(
        "command",
        choices=list(STAGES),
        metavar="command",
        help="; ".join(f"{k}: {v[1]}" for k, v in STAGES.items()),
    )
    if not argv or argv[0] in ("-h", "--help"):
        parser.print_help()
        return 0 if argv else 2
    args = parser.parse_args(argv[:1])
    from rrg_trl.preflight import PREFLIGHT_ERRORS

    try:
        _runner(args.command)(argv[1:])
    except PREFLIGHT_ERRORS as error:  # a mistake found before anything loaded: one line, no traceback
        print(f"rrg-trl {args.command}: error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
