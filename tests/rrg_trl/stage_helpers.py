"""Helpers of the stage tests: recipe argv, step counting, calling a stage's ``main`` with callbacks."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
TINY_RECIPES = REPO / "recipes" / "tiny"


def stage_argv(stage: str, output_dir: Path, *overrides: str) -> list[str]:
    """``--config recipes/tiny/<stage>.yaml`` + the test's overrides (later flags win)."""
    return [
        "--config",
        str(TINY_RECIPES / f"{stage}.yaml"),
        "--output_dir",
        str(output_dir),
        "--log_level",
        "warning",
        *overrides,
    ]


class StepCounter:
    """A TrainerCallback counting the optimizer steps this process ran (a resumed run runs fewer)."""

    def __init__(self, on_step=None):
        from transformers import TrainerCallback

        counter = self

        class _Callback(TrainerCallback):
            def on_step_end(self, args, state, control, **kwargs):
                counter.steps.append(state.global_step)
                if counter.on_step is not None:
                    counter.on_step(state.global_step)

        self.steps: list[int] = []
        self.on_step = on_step
        self.callback = _Callback()


def run_stage(module, argv: list[str], *callbacks):
    """Parse like ``run(argv)`` does, then call ``main`` with extra callbacks."""
    return module.main(*module.make_parser().parse_args_and_config(args=argv), callbacks=list(callbacks))


def logged(result, key: str) -> list:
    """Values of ``key`` in the trainer's log history, in step order."""
    return [entry[key] for entry in result.trainer.state.log_history if key in entry]


class VisionCalls:
    """A TrainerCallback that counts forward passes of the policy's vision tower (images really reach it)."""

    NAMES = ("visual", "vision_tower", "vision_model")

    def __init__(self):
        from transformers import TrainerCallback

        counter = self

        class _Callback(TrainerCallback):
            def on_train_begin(self, args, state, control, model=None, **kwargs):
                towers = [
                    m for name, m in model.named_modules() if name.rsplit(".", 1)[-1] in VisionCalls.NAMES
                ]
                assert towers, "no vision tower found in the policy"
                towers[0].register_forward_hook(lambda *a: counter.calls.append(1))

        self.calls: list[int] = []
        self.callback = _Callback()


def sampled_completion_ids(
    model, processor, rows, *, samples: int, max_new_tokens: int, seed: int = 0
) -> list:
    """Sampled completions (token ids, prompt removed) of ``model`` for dataset rows, as GRPO generates them:
    the conversational prompt with the row's image, the chat template, temperature 1."""
    import torch
    from trl.data_utils import prepare_multimodal_messages

    texts = [
        processor.apply_chat_template(
            prepare_multimodal_messages(r["prompt"], images=[r["image"]]),
            add_generation_prompt=True,
            tokenize=False,
        )
        for r in rows
    ]
    inputs = processor(text=texts, images=[[r["image"]] for r in rows], return_tensors="pt", padding=True)
    torch.manual_seed(seed)
    with torch.no_grad():
        out = model.generate(
            **inputs,
            do_sample=True,
            temperature=1.0,
            top_k=0,
            top_p=1.0,
            max_new_tokens=max_new_tokens,
            num_return_sequences=samples,
        )
    tokenizer = getattr(processor, "tokenizer", processor)
    eos = model.generation_config.eos_token_id
    stop = {tokenizer.eos_token_id, *(eos if isinstance(eos, list) else [eos])}
    completions = []
    for ids in out[:, inputs["input_ids"].shape[1] :].tolist():
        end = next((i + 1 for i, t in enumerate(ids) if t in stop), len(ids))
        completions.append(ids[:end])  # up to and including the first EOS, like TRL's completion_ids
    return completions
