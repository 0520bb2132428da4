"""A random RadGraph (DyGIE++) archive in the official layout, with heads that predict realistic graphs.

Writes ``StanfordAIMI/RRG_scorers/radgraph.tar.gz`` (members at the root: ``config.json``, an AllenNLP/DyGIE++
experiment config; ``vocabulary/``; ``weights.th``, the DyGIE state dict including the unused coref/events
parts that a strict load expects) and the backbone folder named in that config, a BERT config plus an uncased
WordPiece tokenizer trained on ``corpus``. radeval's RadGraph loads it unmodified.

Purely random heads tag almost every span or none, and nearly all decisions sit next to 0, which makes every
RadGraph test vacuous (no entities, or all of them) or flaky (decisions that float32 noise flips). So the heads
are shaped, not trained:

- position embeddings are damped (x0.1) so that word identity drives decisions;
- the width embedding carries a one-hot width code that both feed-forwards pass through to their last layer,
  where a fixed per-width bonus makes 1-2 word spans the likely entities;
- the mention pruner scores spans with the NER head's average label score, so kept spans are mostly entities;
- output scales are set to a fixed spread, then the NER and relation biases are solved on synthetic reports for
  the target rates, with each threshold placed in the widest score gap near its quantile (decision margins
  stay far from float32 noise).

Measured on the seed-0 tiny kit (tests/reward_server/tinykit/test_radgraph.py prints them): 150 unseen
synthetic reports give 0.43 entities per word and 0.49 relations per entity, 300 IU X-ray test reports 0.37
and 0.41, every entity and relation label present, smallest decision margins 4e-4 and 9e-4 respectively
(float32 batching noise is ~1e-6). The base-size archive calibrates to 0.43 and 0.45. Relations are scored
over all pairs of kept spans with no distance feature (DyGIE++), so on very long reports they grow with the
square of the length.

The archive bytes depend only on the seed and the backbone vocabulary: calibrated scales and biases are rounded
so that float32 noise of the calibration pass (thread count, CPU) cannot reach them.
"""

from __future__ import annotations

import gzip
import io
import json
import tarfile
from pathlib import Path

import numpy as np
import torch

from reward_server.radcliq.model_files import RADGRAPH_BACKBONE, RADGRAPH_FILE, SCORERS_REPO
from reward_server.radcliq.radgraph.archive import (
    BACKBONE_PREFIX,
    NON_PADDED,
    RadGraphArchive,
    parse_vocabulary,
)
from reward_server.tinykit.tokenizers import train_wordpiece_uncased

NER_LABELS = ["", "ANAT-DP", "OBS-DP", "OBS-DA", "OBS-U"]  # null label first (DyGIE asserts index 0)
RELATION_LABELS = ["modify", "located_at", "suggestive_of"]
MAX_SPAN_WIDTH = 8
FEATURE_SIZE = 20
SPANS_PER_WORD = 0.5
MAX_LENGTH = 512
# RadGraph on real reports tags roughly 0.3-0.5 entities per word and 0.5 relations per entity.
TARGET_ENTITIES_PER_WORD = 0.4
TARGET_RELATIONS_PER_ENTITY = 0.5
SCORE_SPREAD = 3.0  # std of the random part of the head outputs
# Added to every label score by span width 1..8 (in SCORE_SPREAD units): short spans win.
WIDTH_BONUS = [1.0, 0.6, -0.6, -1.6, -2.6, -3.6, -4.6, -5.6]
SIZES = {
    # hidden 64 x 2 layers, but 512 positions so that >510-piece reports exercise the folding.
    "tiny": {"hidden": 64, "layers": 2, "heads": 4, "intermediate": 128, "ff": 48, "vocab": None},
    "base": {"hidden": 768, "layers": 12, "heads": 12, "intermediate": 3072, "ff": 150, "vocab": 30522},
}
CALIBRATION_REPORTS = {"tiny": 160, "base": 48}


def experiment_config(backbone: str, ff_hidden: int) -> dict:
    """DyGIE++'s RadGraph training config (its template's structure and defaults), naming ``backbone``."""
    embedder = {"type": "pretrained_transformer_mismatched", "model_name": backbone, "max_length": MAX_LENGTH}
    return {
        "dataset_reader": {
            "type": "dygie",
            "token_indexers": {"bert": dict(embedder)},
            "max_span_width": MAX_SPAN_WIDTH,
        },
        "model": {
            "type": "dygie",
            "embedder": {"token_embedders": {"bert": dict(embedder)}},
            "initializer": {"regexes": [["_span_width_embedding.weight", {"type": "xavier_normal"}]]},
            "module_initializer": {
                "regexes": [
                    [".*weight", {"type": "xavier_normal"}],
                    [".*weight_matrix", {"type": "xavier_normal"}],
                ]
            },
            "loss_weights": {"ner": 0.2, "relation": 1.0, "coref": 0.0, "events": 0.0},
            "feature_size": FEATURE_SIZE,
            "max_span_width": MAX_SPAN_WIDTH,
            "target_task": "relation",
            "feedforward_params": {"num_layers": 2, "hidden_dims": ff_hidden, "dropout": 0.4},
            "modules": {
                "coref": {"spans_per_word": 0.3, "max_antecedents": 100, "coref_prop": 0},
                "ner": {},
                "relation": {"spans_per_word": SPANS_PER_WORD},
                "events": {
                    "trigger_spans_per_word": 0.3,
                    "argument_spans_per_word": 0.8,
                    "loss_weights": {"trigger": 0.2, "arguments": 1.0},
                },
            },
        },
        "data_loader": {"batch_sampler": {"type": "bucket", "batch_size": 1}},
        "trainer": {
            "num_epochs": 50,
            "grad_norm": 5.0,
            "patience": 5,
            "validation_metric": "+MEAN__relation_f1",
        },
        "random_seed": 13370,
        "numpy_seed": 1337,
        "pytorch_seed": 133,
    }


def vocabulary_files() -> dict[str, str]:
    """``vocabulary/`` as AllenNLP saves it: label namespaces are non-padded, one token per line."""
    return {
        NON_PADDED: "*tags\n*labels\n",
        "radgraph__ner_labels.txt": "\n".join(NER_LABELS) + "\n",
        "radgraph__relation_labels.txt": "\n".join(RELATION_LABELS) + "\n",
    }


class _Init:
    """Seeded tensors (one generator, so the whole archive is a function of the seed)."""

    def __init__(self, seed: int):
        self.gen = torch.Generator().manual_seed(seed)

    def normal(self, *shape: int, std: float) -> torch.Tensor:
        return torch.randn(*shape, generator=self.gen) * std

    def linear(self, n_out: int, n_in: int, prefix: str) -> dict[str, torch.Tensor]:
        return {
            f"{prefix}.weight": self.normal(n_out, n_in, std=(2.0 / n_in) ** 0.5),
            f"{prefix}.bias": self.normal(n_out, std=0.1),
        }

    def feedforward(self, n_in: int, hidden: int, prefix: str) -> dict[str, torch.Tensor]:
        out = self.linear(hidden, n_in, f"{prefix}._linear_layers.0")
        out.update(self.linear(hidden, hidden, f"{prefix}._linear_layers.1"))
        return out


def _width_feedforward(init: _Init, span_dim: int, hidden: int, prefix: str) -> dict[str, torch.Tensor]:
    """A 2-layer feed-forward whose last ``MAX_SPAN_WIDTH`` units copy the one-hot width code of the span."""
    ff = init.feedforward(span_dim, hidden, prefix)
    w1, b1 = ff[f"{prefix}._linear_layers.0.weight"], ff[f"{prefix}._linear_layers.0.bias"]
    w2, b2 = ff[f"{prefix}._linear_layers.1.weight"], ff[f"{prefix}._linear_layers.1.bias"]
    first = hidden - MAX_SPAN_WIDTH
    for w in range(MAX_SPAN_WIDTH):
        unit, code = first + w, span_dim - FEATURE_SIZE + w
        w1[unit].zero_()
        w1[unit, code] = 1.0
        b1[unit] = 0.0
        w2[unit].zero_()
        w2[unit, unit] = 1.0
        b2[unit] = 0.0
    return ff


def _unused_modules(init: _Init, span_dim: int, hidden: int) -> dict[str, torch.Tensor]:
    """Coref and events parameters: never used at inference, but part of the DyGIE state dict."""
    out = {"_coref._distance_embedding.weight": init.normal(10, FEATURE_SIZE, std=1.0)}
    out.update(
        init.feedforward(3 * span_dim + FEATURE_SIZE, hidden, "_coref._antecedent_feedforward._module")
    )
    out.update(init.feedforward(span_dim, hidden, "_coref._mention_pruner._scorer.0._module"))
    out.update(init.linear(1, hidden, "_coref._mention_pruner._scorer.1._module"))
    out.update(init.linear(1, hidden, "_coref._antecedent_scorer._module"))
    out.update(init.linear(span_dim, 2 * span_dim, "_coref._f_network._linear_layers.0"))
    out["_events._distance_embedding.weight"] = init.normal(10, FEATURE_SIZE, std=1.0)
    return out


NER = "_ner._ner_scorers.radgraph__ner_labels"
PRUNER = "_relation._mention_pruners.radgraph__relation_labels._scorer"
RELATION_FF = "_relation._relation_feedforwards.radgraph__relation_labels"
RELATION_OUT = "_relation._relation_scorers.radgraph__relation_labels"


def _backbone(out_dir: Path, corpus: list[str], seed: int, size: str) -> tuple[Path, dict[str, torch.Tensor]]:
    from transformers import BertConfig, BertModel

    spec = SIZES[size]
    folder = out_dir / RADGRAPH_BACKBONE
    tokenizer_dir = train_wordpiece_uncased(corpus, folder)
    n_vocab = len(json.loads((tokenizer_dir / "tokenizer.json").read_text())["model"]["vocab"])
    config = BertConfig(
        vocab_size=max(n_vocab, spec["vocab"] or 0),
        hidden_size=spec["hidden"],
        num_hidden_layers=spec["layers"],
        num_attention_heads=spec["heads"],
        intermediate_size=spec["intermediate"],
        max_position_embeddings=MAX_LENGTH,
        type_vocab_size=2,
        pad_token_id=0,
    )
    config.save_pretrained(folder)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = BertModel(config)
    state = model.state_dict()
    state["embeddings.position_embeddings.weight"] = state["embeddings.position_embeddings.weight"] * 0.1
    return folder, {BACKBONE_PREFIX + k: v.clone() for k, v in state.items()}


def _heads(init: _Init, hidden: int, ff: int) -> dict[str, torch.Tensor]:
    span_dim = 2 * hidden + FEATURE_SIZE
    width = init.normal(MAX_SPAN_WIDTH, FEATURE_SIZE, std=0.1)
    width[:, :MAX_SPAN_WIDTH] = torch.eye(MAX_SPAN_WIDTH)
    weights = {"_endpoint_span_extractor._span_width_embedding.weight": width}
    weights.update(_width_feedforward(init, span_dim, ff, f"{NER}.0._module"))
    weights[f"{NER}.1._module.weight"] = init.normal(len(NER_LABELS) - 1, ff, std=ff**-0.5)
    weights[f"{NER}.1._module.bias"] = torch.zeros(len(NER_LABELS) - 1)
    # The pruner shares the NER feed-forward (its notion of "entity-ness"); its scorer is set in _shape_heads.
    weights.update(
        {k.replace(f"{NER}.0", f"{PRUNER}.0"): v.clone() for k, v in weights.items() if f"{NER}.0" in k}
    )
    weights[f"{PRUNER}.1._module.weight"] = torch.zeros(1, ff)
    weights[f"{PRUNER}.1._module.bias"] = torch.zeros(1)
    weights.update(init.feedforward(3 * span_dim, ff, RELATION_FF))
    weights[f"{RELATION_OUT}.weight"] = init.normal(len(RELATION_LABELS), ff, std=ff**-0.5)
    weights[f"{RELATION_OUT}.bias"] = torch.zeros(len(RELATION_LABELS))
    weights.update(_unused_modules(init, span_dim, ff))
    return weights


def _threshold(values: np.ndarray, target: int, window: float = 0.1) -> float:
    """A cut giving about ``target`` values above it, placed mid-way in the widest gap within ±window."""
    v = np.sort(values)[::-1]
    if len(v) < 2:
        return 0.0
    lo = int(np.clip(round(target * (1 - window)), 1, len(v) - 1))
    hi = int(np.clip(round(target * (1 + window)), lo, len(v) - 1))
    gaps = v[lo - 1 : hi] - v[lo : hi + 1]
    i = lo + int(np.argmax(gaps))
    return float((v[i - 1] + v[i]) / 2)


def calibration_stats(scores) -> dict[str, float]:
    """Entity / relation rates and smallest decision margins of a list of ``DocScores``."""
    words = entities = relations = 0
    labels = np.zeros(len(NER_LABELS), dtype=np.int64)
    rel_labels = np.zeros(len(RELATION_LABELS) + 1, dtype=np.int64)
    margins = {"ner": np.inf, "prune": np.inf, "relation": np.inf}
    for s in scores:
        if s is None:
            continue
        ner = s.ner.argmax(-1)
        entity = ner != 0
        both = entity[s.kept][:, None] & entity[s.kept][None, :]
        rel = s.relation.argmax(-1)
        words += len(s.words)
        entities += int(entity.sum())
        relations += int((rel[both] > 0).sum())
        labels += np.bincount(ner, minlength=len(NER_LABELS))
        rel_labels += np.bincount(rel[both], minlength=len(RELATION_LABELS) + 1)
        for key, value in s.margins().items():
            margins[key] = min(margins[key], value)
    return {
        "entities_per_word": entities / max(words, 1),
        "relations_per_entity": relations / max(entities, 1),
        "entity_labels": dict(zip(NER_LABELS[1:], labels[1:].tolist(), strict=True)),
        "relation_labels": dict(zip(RELATION_LABELS, rel_labels[1:].tolist(), strict=True)),
        **{f"min_margin_{k}": float(v) for k, v in margins.items()},
    }


def _rounded(x: torch.Tensor) -> torch.Tensor:
    """3 significant digits: float32 noise of the calibration pass (thread count, CPU) must not reach the bytes."""
    return torch.tensor([float(f"{v:.3g}") for v in x.tolist()])


@torch.no_grad()
def _shape_heads(model, texts: list[str]) -> None:
    """Standardise the head outputs, add the width bonus, then solve the NER and relation biases (in place).

    Two passes over ``texts``: the first measures the NER label scores; the second, with NER and pruner final
    but for the NER bias, gives everything else (relation scores are linear in the relation scorer, so its scale
    and bias are solved from the same pass).
    """
    spread = torch.tensor(SCORE_SPREAD)
    ner_w, ner_b = model.ner_out.weight, model.ner_out.bias
    random_units = slice(0, ner_w.shape[1] - MAX_SPAN_WIDTH)
    ner_w[:, random_units.stop :] = 0.0
    scores = [s for s in model.scores(texts) if s is not None]
    u = torch.from_numpy(np.concatenate([s.ner[:, 1:] for s in scores]))
    scale = _rounded(spread / u.std(0))
    ner_w[:, random_units] *= scale[:, None]
    ner_b.copy_(_rounded(-u.mean(0) * scale))  # every label centred: all labels occur
    ner_w[:, random_units.stop :] = torch.tensor(WIDTH_BONUS) * SCORE_SPREAD
    model.prune_out.weight.copy_(ner_w.mean(0, keepdim=True))
    model.prune_out.bias.fill_(float(ner_b.mean()))
    scores = [s for s in model.scores(texts) if s is not None]
    # NER bias: a span is an entity iff max_label(u + b) > 0.
    n_words = sum(len(s.words) for s in scores)
    best = np.concatenate([s.ner[:, 1:].max(-1) for s in scores])
    shift = -round(_threshold(best, round(TARGET_ENTITIES_PER_WORD * n_words)), 3)
    ner_b += shift
    # Relation scores are raw + m_i + m_j; standardise the raw part per label, then cut the candidates that can
    # reach the output (both spans entities under the final NER bias).
    raw, mentions, both = [], [], []
    for s in scores:
        m = s.mention[s.kept]
        pair_m = m[:, None] + m[None, :]
        raw.append((s.relation[..., 1:] - pair_m[..., None]).reshape(-1, len(RELATION_LABELS)))
        mentions.append(pair_m.ravel())
        entity = (s.ner[:, 1:].max(-1) + shift > 0)[s.kept]
        both.append((entity[:, None] & entity[None, :]).ravel())
    raw, mentions, both = np.concatenate(raw), np.concatenate(mentions), np.concatenate(both)
    rel_scale = _rounded(torch.from_numpy(SCORE_SPREAD / raw.std(0)))
    rel_offset = _rounded(torch.from_numpy(-raw.mean(0)) * rel_scale)
    standard = raw * rel_scale.numpy() + rel_offset.numpy() + mentions[:, None]
    n_entities = int(sum(((s.ner[:, 1:].max(-1) + shift) > 0).sum() for s in scores))
    cut = round(_threshold(standard[both].max(-1), round(TARGET_RELATIONS_PER_ENTITY * n_entities)), 3)
    model.relation_out.weight *= rel_scale[:, None]
    model.relation_out.bias.copy_(rel_offset - cut)


def _tar_gz(members: dict[str, bytes], path: Path) -> None:
    """A reproducible tar.gz (fixed mtimes and owners) with ``members`` at the archive root."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for name in sorted({str(Path(n).parent) for n in members if "/" in n}):
            info = tarfile.TarInfo(name)
            info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o755, 0
            tar.addfile(info)
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), 0o644, 0
            tar.addfile(info, io.BytesIO(data))
    with (
        open(path, "wb") as f,
        gzip.GzipFile(
            fileobj=f, mode="wb", mtime=0, compresslevel=6 if len(raw.getvalue()) < 1 << 26 else 1
        ) as gz,
    ):
        gz.write(raw.getvalue())


def write_radgraph(out_dir: str | Path, corpus: list[str], seed: int = 0, size: str = "tiny") -> Path:
    """Write ``radgraph.tar.gz`` and its backbone folder under ``out_dir`` (``make_tiny``'s entry point).

    ``size="tiny"``: hidden 64, 2 layers, feed-forwards of 48; ``size="base"``: BERT-base shapes and the DyGIE++
    feed-forwards of 150 (about 430 MB, for benchmarks). Returns the archive path.
    """
    return build_radgraph(out_dir, corpus, seed=seed, size=size, measure=False)[0]


def build_radgraph(
    out_dir: str | Path, corpus: list[str], seed: int = 0, size: str = "tiny", measure: bool = True
) -> tuple[Path, dict[str, float]]:
    """:func:`write_radgraph`, also returning :func:`calibration_stats` on the synthetic calibration reports."""
    from reward_server.radcliq.radgraph.model import RadGraph

    if size not in SIZES:
        raise ValueError(f"size must be one of {tuple(SIZES)}, got {size!r}")
    out = Path(out_dir)
    corpus = list(corpus)
    _, backbone = _backbone(out, corpus, seed, size)
    spec = SIZES[size]
    weights = {**backbone, **_heads(_Init(seed + 1), spec["hidden"], spec["ff"])}
    config = experiment_config(RADGRAPH_BACKBONE, spec["ff"])
    vocab = vocabulary_files()
    archive = RadGraphArchive(config, parse_vocabulary(vocab), weights, source="tinykit")
    model = RadGraph.from_pretrained(archive, model_dir=out, device="cpu")
    # Synthetic reports only: the kit must build on a fresh clone with no data.
    texts = [t for t in corpus if "." in t][: CALIBRATION_REPORTS[size]]
    _shape_heads(model, texts)
    stats = calibration_stats(model.scores(texts)) if measure else {}
    for prefix, layer in (
        (f"{NER}.1._module", model.ner_out),
        (f"{PRUNER}.1._module", model.prune_out),
        (RELATION_OUT, model.relation_out),
    ):
        weights[f"{prefix}.weight"] = layer.weight.detach().clone()
        weights[f"{prefix}.bias"] = layer.bias.detach().clone()
    buffer = io.BytesIO()
    torch.save({k: v.contiguous() for k, v in weights.items()}, buffer)
    members = {"config.json": json.dumps(config, indent=2).encode()}
    members.update({f"vocabulary/{name}": text.encode() for name, text in vocab.items()})
    members["weights.th"] = buffer.getvalue()
    path = out / SCORERS_REPO / RADGRAPH_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    _tar_gz(members, path)
    return path, stats
