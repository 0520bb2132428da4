"""Which 4-bit (NF4) layers bitsandbytes can run on a CPU, checked before the first forward pass.

On CPUs with AVX-512-BF16 (Intel Xeon since Cooper Lake / Sapphire Rapids, AMD Zen 4 and later) bitsandbytes
repacks each ``Linear4bit`` weight for its bf16 kernels on the first inference-mode forward (generation, or
any ``no_grad`` pass): it tiles the output rows in blocks of 32 and reshapes the quantisation scales to one
per 64 input columns. A layer narrower than that fails there with an opaque ``reshape`` error, while the same
model runs on an AVX2-only CPU, which never repacks. We apply the rule on every CPU, so a configuration
that works on one machine works on all, and refuse at load time with the layer's name instead.
"""

from __future__ import annotations

import torch

# bitsandbytes' NF4 block size (BitsAndBytesConfig always quantises 4-bit weights in blocks of 64) and the
# output-row tile of its AVX-512-BF16 CPU layout (``_convert_weight_packed_for_cpu``'s ``block_n``).
NF4_BLOCKSIZE = 64
CPU_PACK_ROWS = 32
RULE = (
    f"on a CPU, bitsandbytes repacks every 4-bit layer for its AVX-512-BF16 kernels (Intel Xeon, AMD Zen 4+), "
    f"which needs the layer's input width to be a multiple of {NF4_BLOCKSIZE} and its output width a "
    f"multiple of {CPU_PACK_ROWS}"
)


def cpu_unpackable_layers(model: torch.nn.Module) -> list[str]:
    """``name (in -> out)`` of each quantised CPU layer that bitsandbytes' CPU repacking cannot handle."""
    import bitsandbytes as bnb

    bad = []
    for name, module in model.named_modules():
        if not isinstance(module, bnb.nn.Linear4bit) or module.weight.device.type != "cpu":
            continue
        if module.in_features % NF4_BLOCKSIZE or module.out_features % CPU_PACK_ROWS:
            bad.append(f"{name} ({module.in_features} -> {module.out_features})")
    return bad


def check_cpu_4bit_layers(model: torch.nn.Module, name_or_path: object) -> None:
    """Refuse a 4-bit model that would fail at its first inference pass on an AVX-512-BF16 CPU."""
    bad = cpu_unpackable_layers(model)
    if bad:
        shown = ", ".join(bad[:4]) + (f" and {len(bad) - 4} more" if len(bad) > 4 else "")
        raise ValueError(
            f"cannot load {name_or_path} in 4 bits on this CPU: {RULE}; these layers are not: {shown}. "
            "Released checkpoints all have such widths; for the tiny test policies use "
            "`rrg-trl make-tiny-policy --size qlora`, or train without --load_in_4bit."
        )
