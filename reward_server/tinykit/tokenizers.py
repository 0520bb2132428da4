"""Offline tokenizer training in the formats of the hub tokenizers the metrics load.

``bert-base-uncased`` and PubMedBERT are uncased WordPiece tokenizers with ``[PAD]`` at id 0;
``distilroberta-base`` is a byte-level BPE with ``<s>=0, <pad>=1, </s>=2, <unk>=3``. The trained
tokenizers keep those conventions (the reference code relies on pad ids, e.g. BERTScore pads with 1),
so the real loading code runs unchanged against them.
"""

from __future__ import annotations

import string
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers

BERT_SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
ROBERTA_SPECIALS = ["<s>", "<pad>", "</s>", "<unk>"]


def wordpiece_vocab(corpus: Iterable[str], vocab_size: int = 1200) -> list[str]:
    """A deterministic uncased WordPiece vocabulary: specials, characters, frequent words and suffixes.

    ``tokenizers``' WordPieceTrainer breaks ties in hash order, so its vocabulary changes from run to run;
    the kit must be byte-identical for a seed, so the vocabulary is chosen here by counts with
    lexicographic tie-breaks. Every ASCII character exists as a word start and as a ``##`` continuation,
    so no ASCII word falls back to ``[UNK]`` (the real vocabularies have them too).
    """
    normalizer = normalizers.BertNormalizer(clean_text=True, handle_chinese_chars=True, lowercase=True)
    pre = pre_tokenizers.BertPreTokenizer()
    words: Counter[str] = Counter()
    for text in corpus:
        words.update(w for w, _ in pre.pre_tokenize_str(normalizer.normalize_str(text)))
    chars = sorted(set(string.ascii_lowercase + string.digits + string.punctuation).union(*words))
    vocab = [*BERT_SPECIALS, *chars, *(f"##{c}" for c in chars if c.isalnum())]
    suffixes: Counter[str] = Counter()
    for word, count in words.items():
        for k in range(2, min(5, len(word))):
            suffixes[f"##{word[-k:]}"] += count
    budget = max(0, vocab_size - len(vocab))
    ranked_words = [w for w, _ in sorted(words.items(), key=lambda kv: (-kv[1], kv[0])) if len(w) > 1]
    ranked_suffixes = [s for s, _ in sorted(suffixes.items(), key=lambda kv: (-kv[1], kv[0]))]
    n_words = min(len(ranked_words), (2 * budget) // 3)
    vocab += ranked_words[:n_words] + ranked_suffixes[: budget - n_words]
    return list(dict.fromkeys(vocab))


def train_wordpiece_uncased(corpus: Iterable[str], out_dir: str | Path, vocab_size: int = 1200) -> Path:
    """Build an uncased WordPiece tokenizer from ``corpus`` and save it as a ``BertTokenizerFast`` directory."""
    from transformers import BertTokenizerFast

    vocab = {piece: i for i, piece in enumerate(wordpiece_vocab(corpus, vocab_size))}
    tok = Tokenizer(models.WordPiece(vocab=vocab, unk_token="[UNK]", max_input_chars_per_word=100))
    tok.normalizer = normalizers.BertNormalizer(clean_text=True, handle_chinese_chars=True, lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.add_special_tokens(BERT_SPECIALS)
    cls_id, sep_id = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", cls_id), ("[SEP]", sep_id)],
    )
    tok.decoder = decoders.WordPiece(prefix="##")
    # unk_token="[UNK]", sep_token="[SEP]", ... as bert-base-uncased's tokenizer_config.json has them
    specials = {f"{t.strip('[]').lower()}_token": t for t in BERT_SPECIALS}
    fast = BertTokenizerFast(tokenizer_object=tok, do_lower_case=True, model_max_length=512, **specials)
    return _save(tok, fast, out_dir)


def train_byte_bpe(corpus: Iterable[str], out_dir: str | Path, vocab_size: int = 1200) -> Path:
    """Train a byte-level BPE and save it as a ``RobertaTokenizerFast`` directory (distilroberta layout)."""
    from transformers import RobertaTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=ROBERTA_SPECIALS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(list(corpus), trainer)
    tok.add_special_tokens(["<mask>"])
    tok.post_processor = processors.RobertaProcessing(
        ("</s>", tok.token_to_id("</s>")), ("<s>", tok.token_to_id("<s>")), trim_offsets=True
    )
    fast = RobertaTokenizerFast(
        tokenizer_object=tok,
        bos_token="<s>",
        eos_token="</s>",
        sep_token="</s>",
        cls_token="<s>",
        unk_token="<unk>",
        pad_token="<pad>",
        mask_token="<mask>",
        model_max_length=512,
    )
    return _save(tok, fast, out_dir)


def _save(tok: Tokenizer, fast, out_dir: str | Path) -> Path:
    """Save as the hub directory has it: the transformers files plus ``tok``'s own vocabulary files
    (``vocab.txt``; ``vocab.json`` + ``merges.txt``)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    fast.save_pretrained(out)
    tok.model.save(str(out))
    return out
