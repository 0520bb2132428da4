"""Random BERTScore (distilroberta-base) and CheXbert models in their official on-disk formats.

The reference code must load these files unchanged, so each writer produces exactly what the hub gives:
``distilroberta-base/`` is a ``save_pretrained`` RoBERTa with a byte-level BPE tokenizer; ``bert-base-uncased/``
holds the config and uncased WordPiece tokenizer CheXbert reads; ``StanfordAIMI/RRG_scorers/chexbert.pth`` is
``{"model_state_dict": ...}`` with the DataParallel key names of the original checkpoint.

Plain random weights make both metrics degenerate, so each model gets one deterministic nudge toward how the
trained model behaves (weights stay random):

* BERTScore: trained distilroberta is anisotropic (token cosines are strongly positive, hence its baseline
  F = 0.847). A larger shared token-type vector reproduces that, so unrelated reports score near 0 after
  rescaling, identical ones 1, and every token's best match is comfortably positive (the reference's
  greedy stage lets padded zeros win when all cosines of a token are negative; see radcliq/bertscore.py).
* CheXbert: a random BERT's [CLS] vector is almost the same for every text (s_emb ~ 1.0 everywhere): attention
  is near-uniform and weak next to the residual stream. Each layer's query/key and attention-output weights are
  scaled (calibrated on synthetic reports to an attention-logit std of 2.5 and an attention/residual norm ratio
  of 0.55, so tiny and base sizes behave alike) and the shared token-type vector is zeroed: [CLS] then reads a
  few content words, two random reports get s_emb ~ 0.5-0.8 and identical ones 1, and bf16 stays close to fp32.
  The 14 heads are fitted on the principal directions of [CLS] so their argmax labels are varied (not all
  blank), which keeps CheXbert F1 tests meaningful.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from pathlib import Path

import torch

from reward_server.radcliq.model_files import BERTSCORE_MODEL, CHEXBERT_BACKBONE, CHEXBERT_FILE, SCORERS_REPO
from reward_server.tinykit.tokenizers import train_byte_bpe, train_wordpiece_uncased

SIZES = ("tiny", "base")

# Real shapes for "base": distilroberta-base (768 x 6 layers) and bert-base-uncased (768 x 12 layers).
ROBERTA_SHAPES = {
    "tiny": dict(hidden_size=64, num_hidden_layers=6, num_attention_heads=4, intermediate_size=128),
    "base": dict(hidden_size=768, num_hidden_layers=6, num_attention_heads=12, intermediate_size=3072),
}
BERT_SHAPES = {
    "tiny": dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=128),
    "base": dict(hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072),
}
VOCAB_SIZES = {"tiny": 1200, "base": 30000}

# Scale of the shared token-type vector: unrelated synthetic reports land near rescaled F ~ 0.1-0.3.
ROBERTA_ANISOTROPY = 2.5
# CheXbert calibration targets (per layer, measured on synthetic reports).
ATTENTION_LOGIT_STD = 2.5
ATTENTION_RATIO = 0.55
N_CALIBRATION_SHARPEN = 32
N_CALIBRATION = 256
# Target label rates of the fitted heads: (blank, positive, negative, uncertain) and (blank, positive).
FOUR_WAY_RATES = (0.45, 0.2, 0.25, 0.1)
TWO_WAY_RATES = (0.7, 0.3)
N_FOUR_WAY_HEADS = 13


def _check_size(size: str) -> None:
    if size not in SIZES:
        raise ValueError(f"size must be one of {SIZES}, got {size!r}")


def write_bertscore_model(
    out_dir: str | Path, corpus: Sequence[str], seed: int = 0, size: str = "tiny"
) -> Path:
    """Write ``out_dir/distilroberta-base/`` (RoBERTa, >= 6 layers so BERTScore's layer 5 exists)."""
    from transformers import RobertaConfig, RobertaModel, RobertaTokenizerFast

    _check_size(size)
    target = Path(out_dir) / BERTSCORE_MODEL
    train_byte_bpe(corpus, target, vocab_size=VOCAB_SIZES[size])
    tokenizer = RobertaTokenizerFast.from_pretrained(target)
    config = RobertaConfig(
        vocab_size=len(tokenizer),
        max_position_embeddings=514,  # as roberta: 512 tokens + the padding offset of 2
        type_vocab_size=1,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        layer_norm_eps=1e-5,
        **ROBERTA_SHAPES[size],
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = RobertaModel(config).eval()
    with torch.no_grad():
        model.embeddings.token_type_embeddings.weight.mul_(ROBERTA_ANISOTROPY)
    model.save_pretrained(target)
    return target


def _cls_vectors(model, tokenizer, texts: Sequence[str], batch_size: int = 32) -> torch.Tensor:
    out = []
    with torch.inference_mode():
        for i in range(0, len(texts), batch_size):
            enc = tokenizer(
                list(texts[i : i + batch_size]),
                padding=True,
                truncation=True,
                max_length=128,
                return_tensors="pt",
            )
            out.append(model(**enc).last_hidden_state[:, 0].float())
    return torch.cat(out)


@torch.no_grad()
def _sharpen_attention(bert, tokenizer, texts: Sequence[str]) -> None:
    """Scale each layer's query/key and attention output so [CLS] depends on the words of the report."""
    enc = tokenizer(list(texts), padding=True, truncation=True, max_length=128, return_tensors="pt")
    mask = enc["attention_mask"].bool()
    pairs = mask[:, None, :, None] & mask[:, None, None, :]
    for index, layer in enumerate(bert.encoder.layer):
        hidden = bert(**enc, output_hidden_states=True).hidden_states[index]
        att = layer.attention.self
        heads, size = att.num_attention_heads, att.attention_head_size

        def split(x, heads=heads, size=size):
            return x.view(x.shape[0], x.shape[1], heads, size).transpose(1, 2)

        q, k = split(att.query(hidden)), split(att.key(hidden))
        logits = q @ k.transpose(-1, -2) / math.sqrt(size)
        gain = math.sqrt(ATTENTION_LOGIT_STD / logits[pairs.expand_as(logits)].std().item())
        for proj in (att.query, att.key):
            proj.weight.mul_(gain)
            proj.bias.mul_(gain)
        logits = logits * gain**2
        probs = torch.softmax(logits.masked_fill(~mask[:, None, None, :], float("-inf")), dim=-1)
        context = (probs @ split(att.value(hidden))).transpose(1, 2).reshape(hidden.shape)
        out = layer.attention.output.dense(context)
        ratio = out[mask].norm(dim=-1).mean() / hidden[mask].norm(dim=-1).mean()
        layer.attention.output.dense.weight.mul_(ATTENTION_RATIO / ratio)
        layer.attention.output.dense.bias.mul_(ATTENTION_RATIO / ratio)


def _fit_head(cls: torch.Tensor, components: torch.Tensor, rates: Sequence[float], gen: torch.Generator):
    """A linear head whose argmax classes over ``cls`` follow ``rates`` (random directions, fitted biases)."""
    n_classes = len(rates)
    mixing = torch.randn(n_classes, components.shape[0], generator=gen, dtype=torch.float64)
    weight = mixing @ components  # [classes, hidden]: random combinations of the main [CLS] directions
    logits = cls.double() @ weight.T
    weight = weight / logits.std(0, keepdim=True).T.clamp_min(1e-12) * 2.0
    logits = cls.double() @ weight.T
    target = torch.tensor(rates, dtype=torch.float64)
    bias = -logits.mean(0)
    for step in range(300):
        freq = torch.bincount((logits + bias).argmax(1), minlength=n_classes).double() / len(cls)
        bias += 0.5 / (1 + step / 30) * (torch.log(target) - torch.log(freq.clamp_min(1.0 / len(cls))))
    return weight.float(), bias.float()


def write_chexbert(out_dir: str | Path, corpus: Sequence[str], seed: int = 0, size: str = "tiny") -> Path:
    """Write ``out_dir/bert-base-uncased/`` (config + tokenizer) and ``StanfordAIMI/RRG_scorers/chexbert.pth``."""

    _check_size(size)
    out = Path(out_dir)
    backbone_dir = out / CHEXBERT_BACKBONE
    train_wordpiece_uncased(corpus, backbone_dir, vocab_size=VOCAB_SIZES[size])
    return write_chexbert_weights(
        out / SCORERS_REPO / CHEXBERT_FILE, backbone_dir, corpus, seed=seed, size=size
    )


def write_chexbert_weights(
    path: str | Path, backbone_dir: str | Path, corpus: Sequence[str], seed: int = 0, size: str = "tiny"
) -> Path:
    """Write ``chexbert.pth`` for the tokenizer in ``backbone_dir`` (and its ``config.json`` there)."""
    from transformers import BertConfig, BertModel, BertTokenizerFast

    _check_size(size)
    tokenizer = BertTokenizerFast.from_pretrained(backbone_dir)
    config = BertConfig(
        vocab_size=len(tokenizer),
        max_position_embeddings=512,
        type_vocab_size=2,
        pad_token_id=tokenizer.pad_token_id,
        **BERT_SHAPES[size],
    )
    config.save_pretrained(backbone_dir)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        bert = BertModel(config).eval()
    gen = torch.Generator().manual_seed(seed + 1)

    texts = [t for t in corpus if t.strip()]
    texts = random.Random(seed).sample(texts, min(N_CALIBRATION, len(texts)))
    with torch.no_grad():
        bert.embeddings.token_type_embeddings.weight.zero_()
    _sharpen_attention(bert, tokenizer, texts[:N_CALIBRATION_SHARPEN])
    cls = _cls_vectors(bert, tokenizer, texts)
    centred = (cls - cls.mean(0)).double()
    _, _, v = torch.linalg.svd(centred, full_matrices=False)
    components = v[: min(8, v.shape[0])]

    state = {
        f"module.bert.{k}": v.detach().clone()
        for k, v in bert.state_dict().items()
        if "position_ids" not in k
    }
    for i in range(N_FOUR_WAY_HEADS + 1):
        rates = FOUR_WAY_RATES if i < N_FOUR_WAY_HEADS else TWO_WAY_RATES
        weight, bias = _fit_head(cls, components, rates, gen)
        state[f"module.linear_heads.{i}.weight"] = weight.contiguous()
        state[f"module.linear_heads.{i}.bias"] = bias.contiguous()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"model_state_dict": state}, path)
    return path
