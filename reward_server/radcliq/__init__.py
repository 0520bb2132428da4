"""The RadCliQ metric library: the scorer and everything it computes with, no HTTP.

:mod:`~reward_server.radcliq.scorer` (``RadCliQScorer``) batches the four features: :mod:`.radgraph`,
:mod:`.bertscore`, :mod:`.chexbert` (its [CLS] vectors for s_emb) and :mod:`.bleu`; :mod:`.composite` turns
them into RadCliQ v0/v1; :mod:`.model_files` says where the weights live and checks them. The public names are
re-exported lazily by :mod:`reward_server` (``from reward_server import RadCliQScorer``).
"""
