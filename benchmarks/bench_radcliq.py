"""RadCliQ throughput: ours vs radeval 2.2.1's CompositeMetric, measured side by side in one run.

Both score the SAME pairs with the SAME random weights in real shapes (``rrg-reward make-tiny --size base``:
BERT-base backbones for CheXbert and RadGraph, distilroberta for BERTScore), for two request shapes:

* ``independent``: unrelated (hypothesis, reference) pairs, sent in requests of ``--request-pairs``;
* ``grpo``: GRPO-shaped requests, 8 hypotheses (edits of one report, as a policy samples them) per reference.

For each shape it prints pairs/s of radeval, of ours in exact float32 (cold cache) and in the opt-in bf16 mode
(with its deviation from float32), the speed-up over radeval, and how close float32 gets to the compute floor:
one bare encoder forward per distinct text of the request for each of the three backbones, batched the way we
batch (nothing else: no tokenisation, spans, matching or F1). radeval runs in its own process (its caches
must point at our files before it is imported); its time excludes model loading, like ours.

    python benchmarks/bench_radcliq.py [--pairs 96] [--device cpu|cuda] [--annotation r2gen_annotation.json]
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from machine import device_name  # noqa: E402

from reward_server import RadCliQScorer  # noqa: E402
from reward_server.radcliq.batching import distinct_longest_first, padded_batches  # noqa: E402
from reward_server.tinykit import make_tiny  # noqa: E402
from reward_server.tinykit.corpus import synthetic_reports  # noqa: E402
from tests.parity.pairs import iu_reports  # noqa: E402
from tests.parity.ref_env import run_reference  # noqa: E402

DEFAULT_ANNOTATION = REPO.parent / "shared" / "data" / "iu_xray" / "r2gen_annotation.json"


def _edit(rng: random.Random, text: str) -> str:
    """A plausible policy sample: drop or repeat a sentence, or flip a negation."""
    sentences = [s for s in text.split(". ") if s]
    kind = rng.randrange(3)
    if kind == 0 and len(sentences) > 1:
        del sentences[rng.randrange(len(sentences))]
    elif kind == 1:
        sentences.insert(rng.randrange(len(sentences) + 1), rng.choice(sentences))
    else:
        i = rng.randrange(len(sentences))
        sentences[i] = sentences[i][3:] if sentences[i].startswith("No ") else "No " + sentences[i].lower()
    return ". ".join(sentences)


def build_requests(reports: list[str], shape: str, n_pairs: int, request_pairs: int, seed: int = 0):
    """A list of (hyps, refs) requests totalling ``n_pairs`` pairs."""
    rng = random.Random(seed)
    pairs = []
    if shape == "independent":
        for _ in range(n_pairs):
            pairs.append((rng.choice(reports), rng.choice(reports)))
    else:  # grpo: 8 samples per reference
        while len(pairs) < n_pairs:
            ref = rng.choice(reports)
            pairs += [(_edit(rng, ref), ref) for _ in range(8)]
    pairs = pairs[:n_pairs]
    return [
        ([h for h, _ in pairs[i : i + request_pairs]], [r for _, r in pairs[i : i + request_pairs]])
        for i in range(0, len(pairs), request_pairs)
    ]


def time_ours(scorer: RadCliQScorer, requests) -> tuple[float, list[float]]:
    scorer.cache.clear()
    out = []
    start = time.perf_counter()
    for hyps, refs in requests:
        out += [row["radcliq"] for row in scorer.score(hyps, refs)]
    return time.perf_counter() - start, out


@torch.inference_mode()
def time_floor(scorer: RadCliQScorer, requests) -> float:
    """Bare encoder forwards over each request's distinct texts (BERTScore, CheXbert, RadGraph backbones)."""
    bert = scorer.bertscore
    start = time.perf_counter()
    for hyps, refs in requests:
        texts = list(dict.fromkeys([*hyps, *refs]))
        seqs = distinct_longest_first(bert.tokenize(texts))
        for _, input_ids, mask, _ in padded_batches(
            seqs, bert.batch_size, bert.tokenizer.pad_token_id, bert.device
        ):
            bert.model(input_ids=input_ids, attention_mask=mask)
        scorer.chexbert.embed(texts)  # tokenise + one forward per distinct text: already the bare encoder
        scorer.radgraph.encoder_forward(texts)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model-dir", default=str(REPO / "outputs" / "bench" / "base-kit"))
    parser.add_argument("--size", default="base", choices=["tiny", "base"])
    parser.add_argument("--pairs", type=int, default=96)
    parser.add_argument("--request-pairs", type=int, default=32)
    parser.add_argument("--shapes", nargs="+", default=["independent", "grpo"])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--annotation", default=str(DEFAULT_ANNOTATION))
    parser.add_argument("--skip-radeval", action="store_true")
    parser.add_argument("--json", default=str(REPO / "outputs" / "bench" / "radcliq.json"))
    args = parser.parse_args()

    model_dir = Path(args.model_dir)
    if not (model_dir / "checksums.sha256").is_file():
        print(f"writing {args.size} random kit to {model_dir} ...", flush=True)
        make_tiny(model_dir, size=args.size)
    annotation = Path(args.annotation)
    if annotation.is_file():
        reports, source = [r for r in iu_reports(annotation, "train") if r.strip()], "IU X-ray train findings"
    else:
        reports, source = synthetic_reports(500, seed=1), "synthetic reports (no IU X-ray copy found)"
    machine = device_name(args.device)
    print(f"texts: {source}; weights: {args.size} random ({model_dir}); device: {machine}", flush=True)

    exact = RadCliQScorer.from_pretrained(model_dir, device=args.device, idf=True)
    fast = RadCliQScorer.from_pretrained(model_dir, device=args.device, idf=True, dtype=torch.bfloat16)
    warm = build_requests(reports, "independent", 8, 8, seed=99)
    time_ours(exact, warm), time_ours(fast, warm), time_floor(exact, warm)

    results = []
    for shape in args.shapes:
        requests = build_requests(reports, shape, args.pairs, args.request_pairs)
        n = sum(len(h) for h, _ in requests)
        t_exact, v_exact = time_ours(exact, requests)
        t_fast, v_fast = time_ours(fast, requests)
        t_floor = time_floor(exact, requests)
        row = {
            "shape": shape,
            "pairs": n,
            "ours_fp32_s": t_exact,
            "ours_bf16_s": t_fast,
            "floor_s": t_floor,
            "bf16_mean_abs_dev": float(np.mean(np.abs(np.subtract(v_fast, v_exact)))),
            "bf16_max_abs_dev": float(np.max(np.abs(np.subtract(v_fast, v_exact)))),
        }
        if not args.skip_radeval:
            t_ref, v_ref = 0.0, []
            with tempfile.TemporaryDirectory() as tmp:
                for hyps, refs in requests:
                    ref = run_reference(
                        "run_ref_radcliq.py",
                        model_dir,
                        tmp,
                        {"hyps": hyps, "refs": refs, "idf": True},
                        device=args.device,
                    )
                    t_ref += ref["seconds"]
                    v_ref += ref["radcliq"]
            row["radeval_s"] = t_ref
            row["fp32_max_abs_diff_vs_radeval"] = float(np.max(np.abs(np.subtract(v_exact, v_ref))))
        results.append(row)
        print(json.dumps(row), flush=True)

    print(
        f"\n{'shape':<12}{'radeval':>10}{'ours fp32':>11}{'ours bf16':>11}{'floor':>9}"
        f"{'fp32/radeval':>14}{'bf16/radeval':>14}{'fp32/floor':>12}{'bf16 dev':>10}   (pairs/s; speed-ups ×)"
    )
    for r in results:
        rate = {
            k: r["pairs"] / r[k] for k in ("ours_fp32_s", "ours_bf16_s", "floor_s", "radeval_s") if k in r
        }
        ref = rate.get("radeval_s")
        print(
            f"{r['shape']:<12}{(ref or float('nan')):>10.2f}{rate['ours_fp32_s']:>11.2f}{rate['ours_bf16_s']:>11.2f}"
            f"{rate['floor_s']:>9.2f}"
            f"{(rate['ours_fp32_s'] / ref if ref else float('nan')):>14.2f}"
            f"{(rate['ours_bf16_s'] / ref if ref else float('nan')):>14.2f}"
            f"{r['ours_fp32_s'] / r['floor_s']:>12.2f}{r['bf16_mean_abs_dev']:>10.4f}"
        )
    print("fp32/floor is time(ours fp32) / time(bare encoder forwards): 1.0 means no overhead at all.")
    out = Path(args.json)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(
        json.dumps({"device": machine, "texts": source, "weights": args.size, "results": results}, indent=2)
    )
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
