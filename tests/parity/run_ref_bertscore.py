"""Reference BERTScore: radeval 2.2.1's vendored bert-score, run by ``ref_env.run_reference``.

Usage: ``python run_ref_bertscore.py IN.json OUT.json`` in an environment whose hub cache points
``distilroberta-base`` at a model directory of ours. IN: ``{"runs": [{"hyps", "refs", "idf"}], "texts": [...]}``.
Each run builds the scorer as radeval's RadCliQ does (layer 5, baseline rescale, batch 64, idf from the refs of
the call when ``idf``) and scores once. OUT: per run ``P, R, F`` and seconds; ``ids``: the reference's
``sent_encode`` of each of ``texts``.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path


def main(inp: str, out: str) -> None:
    payload = json.loads(Path(inp).read_text())
    import radeval
    import torch

    sys.modules.setdefault("RadEval", radeval)
    from radeval.metrics.bertscore._vendor import BERTScorer
    from radeval.metrics.bertscore._vendor.utils import sent_encode

    torch.set_num_threads(int(payload.get("threads", torch.get_num_threads())))
    results = []
    scorer = None
    for run in payload["runs"]:
        start = time.perf_counter()
        scorer = BERTScorer(
            model_type="distilroberta-base",
            num_layers=5,
            rescale_with_baseline=True,
            idf=run["idf"],
            idf_sents=run["refs"] if run["idf"] else None,
            batch_size=64,
            nthreads=0,  # same idf dict as radeval's Pool(4), without forking in a test subprocess
            all_layers=False,
            lang="en",
            device="cpu",
        )
        built = time.perf_counter()
        P, R, F = scorer.score(cands=run["hyps"], refs=run["refs"], verbose=False, batch_size=64)
        done = time.perf_counter()
        results.append(
            {
                "P": P.tolist(),
                "R": R.tolist(),
                "F": F.tolist(),
                "seconds_init": built - start,
                "seconds_score": done - built,
            }
        )
    ids = [sent_encode(scorer._tokenizer, t) for t in payload.get("texts", [])] if scorer else []
    Path(out).write_text(json.dumps({"runs": results, "ids": ids}))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
