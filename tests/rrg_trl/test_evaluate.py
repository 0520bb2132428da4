"""``rrg_trl.evaluate`` end to end on tiny models and synthetic data: the YAML/CLI path, every output file,
baseline comparison, training curves, and scoring existing outputs (which must reproduce the same table)."""

from __future__ import annotations

import json
import math

import pytest
import yaml
from PIL import Image
from transformers import TrainerState

from reward_server.radcliq.model_files import RANDOM_WEIGHTS_LABEL, RANDOM_WEIGHTS_NOTICE
from rrg_trl import evaluate
from rrg_trl.data import DataConfig
from rrg_trl.evaluate import EvaluateConfig
from rrg_trl.evaluation.table import TABLE_KEYS, TABLE_METRICS
from rrg_trl.metrics import meteor_unavailable_reason

NLG_KEYS = ("BLEU_1", "BLEU_2", "BLEU_3", "BLEU_4", "METEOR", "ROUGE_L", "CIDEr")


@pytest.fixture(scope="module")
def scorer(tiny_model_dir):
    from tests.reward_server.live import tiny_scorer

    return tiny_scorer(str(tiny_model_dir))


@pytest.fixture(scope="module")
def first_run(tmp_path_factory, policy_dir, tiny_model_dir):
    """Generation + scoring through the command-line entry point with a YAML config (what users run)."""
    root = tmp_path_factory.mktemp("eval")
    recipe = root / "evaluate.yaml"
    recipe.write_text(
        yaml.safe_dump(
            {
                "model_name_or_path": str(policy_dir),
                "scorer_model_dir": str(tiny_model_dir),
                "scorer_device": "cpu",
                "device": "cpu",
                "max_new_tokens": 16,
                "batch_size": 3,
                "progress": False,
                "run_name": "tiny-policy",
                "dataset": "synthetic",
                "synthetic_num_test": 5,
                "image_size": 64,
                "sampled_reward_samples": 2,
                "num_beams": 3,
                "no_repeat_ngram_size": 3,
                "image_ablation": "shuffle",
            }
        )
    )
    summary = evaluate.run(["--config", str(recipe), "--output_dir", str(root / "run1")])
    return root / "run1", summary


def _read_samples(out_dir):
    return [json.loads(line) for line in (out_dir / "samples.jsonl").read_text().splitlines()]


def test_every_output_is_written_and_labelled_synthetic(first_run):
    out, summary = first_run
    for name in ("samples.jsonl", "summary.json", "table.md", "metrics.png"):
        assert (out / name).is_file(), name
    assert json.loads((out / "summary.json").read_text()) == json.loads(json.dumps(summary, default=str))
    with Image.open(out / "metrics.png") as im:
        assert im.format == "PNG"
    assert summary["synthetic"] is True
    assert "SYNTHETIC" in summary["data"]["label"]
    assert summary["data"]["n_samples"] == 5 and summary["data"]["sources"] == {"synthetic": 5}
    table = (out / "table.md").read_text()
    assert "SYNTHETIC" in table.splitlines()[0]
    rows = _read_samples(out)
    assert len(rows) == 5
    assert all(r["synthetic"] is True and r["source"] == "synthetic" for r in rows)
    assert [r["id"] for r in rows] == [f"synthetic-test-{i:05d}" for i in range(5)]


def test_every_output_says_the_scorer_models_are_random(first_run):
    """The tiny kit's marker reaches the table (title, note, data line), summary, both JSONL files and the plot."""
    out, summary = first_run
    assert summary["random_weights"] is True and summary["random_weights_notice"] == RANDOM_WEIGHTS_NOTICE
    table = (out / "table.md").read_text().splitlines()
    assert RANDOM_WEIGHTS_LABEL in table[0] and f"> {RANDOM_WEIGHTS_NOTICE}." in table
    [data_line] = [line for line in table if line.startswith("Data: ")]
    assert RANDOM_WEIGHTS_NOTICE in data_line
    for name in ("samples.jsonl", "sampled.jsonl"):
        rows = [json.loads(line) for line in (out / name).read_text().splitlines()]
        assert all(r["random_weights"] is True for r in rows), name
        assert all(r["random_weights_notice"] == RANDOM_WEIGHTS_NOTICE for r in rows), name
    with Image.open(out / "metrics.png") as im:
        assert RANDOM_WEIGHTS_LABEL in im.text["Title"] and im.text["Description"] == RANDOM_WEIGHTS_NOTICE


def test_an_official_layout_scorer_labels_nothing_random(first_run, official_layout_dir, tmp_path):
    from tests.reward_server.live import tiny_scorer

    out, _ = first_run
    config = EvaluateConfig(
        hypotheses_file=str(out / "samples.jsonl"), output_dir=str(tmp_path), meteor=False, progress=False
    )
    summary = evaluate.main(config, scorer=tiny_scorer(str(official_layout_dir)))
    assert summary["random_weights"] is False and "random_weights_notice" not in summary
    assert "RANDOM" not in (tmp_path / "table.md").read_text()
    assert all(
        r["random_weights"] is False and "random_weights_notice" not in r for r in _read_samples(tmp_path)
    )
    with Image.open(tmp_path / "metrics.png") as im:
        assert "RANDOM" not in im.text["Title"] and "Description" not in im.text


def test_every_table_column_is_finite_or_explicitly_unavailable(first_run):
    out, summary = first_run
    table = (out / "table.md").read_text()
    for spec in TABLE_METRICS:
        assert f"| {spec.label} |" in table
        value = summary["metrics"][spec.key]
        if value is None:
            assert summary["unavailable"][spec.key]
            assert f"- {spec.key}: " in table
        else:
            assert math.isfinite(value), spec.key
    if meteor_unavailable_reason() is None:
        assert summary["metrics"]["METEOR"] is not None
    for row in _read_samples(out):
        for key in (*TABLE_KEYS, "radgraph_simple", "radgraph_complete", "reward"):
            if key.startswith("chexbert"):
                continue  # CheXbert F1 is a set-level score; rows carry the positive labels instead
            assert row[key] is None or math.isfinite(row[key]), key
        assert isinstance(row["chexbert_hyp_positive"], list)
    assert summary["metrics"]["reward"] == pytest.approx(-summary["metrics"]["radcliq_v1"])


def test_sampled_reports_reward_is_the_reward_of_those_reports(first_run, scorer):
    out, summary = first_run
    rows = [json.loads(line) for line in (out / "sampled.jsonl").read_text().splitlines()]
    assert len(rows) == 10 and [r["sample"] for r in rows[:4]] == [0, 1, 0, 1]
    assert [r["id"] for r in rows[::2]] == [f"synthetic-test-{i:05d}" for i in range(5)]
    assert all(r["synthetic"] is True for r in rows)
    direct = [
        -row["radcliq"]
        for row in scorer.score([r["hypothesis"] for r in rows], [r["reference"] for r in rows])
    ]
    assert [r["reward"] for r in rows] == pytest.approx(direct, abs=1e-4)
    info = summary["details"]["reward_sampled"]
    assert info["n"] == 10 and info["per_prompt"] == 2 and info["sem"] > 0
    assert summary["metrics"]["reward_sampled"] == pytest.approx(sum(direct) / 10, abs=1e-4)
    assert "Reward of sampled reports (2 per study" in (out / "table.md").read_text()


def test_table_states_decoding_and_degeneracy_figures_match_a_direct_call(first_run):
    from rrg_trl.metrics.degeneracy import degeneracy, identical_flags, repeated_trigram_fraction

    out, summary = first_run
    rows = _read_samples(out)
    hyps = [r["hypothesis"] for r in rows]
    assert (
        summary["decoding"]["text"]
        == "beam search (3 beams), no repeated 3-gram of words, at most 16 new tokens"
    )
    assert summary["degeneracy"] == degeneracy(hyps)
    assert [r["repeated_trigram_fraction"] for r in rows] == [repeated_trigram_fraction(h) for h in hyps]
    assert [r["identical_report"] for r in rows] == identical_flags(hyps)
    table = (out / "table.md").read_text()
    assert "Decoding of these reports: beam search (3 beams), no repeated 3-gram of words" in table
    assert "| distinct-2 |" in table and "| studies given an identical report |" in table


def test_image_ablation_gap_is_own_minus_shuffled_reward_with_its_standard_error(first_run, scorer):
    from rrg_trl.evaluation.ablation import shuffle_permutation

    out, summary = first_run
    own = _read_samples(out)
    shuffled = [json.loads(line) for line in (out / "image_ablation.jsonl").read_text().splitlines()]
    perm = shuffle_permutation(5, 0)
    assert [r["image_of"] for r in shuffled] == [own[j]["id"] for j in perm]
    assert all(r["synthetic"] is True for r in shuffled)
    direct = [
        -r["radcliq"]
        for r in scorer.score([r["hypothesis"] for r in shuffled], [r["reference"] for r in own])
    ]
    assert [r["reward"] for r in shuffled] == pytest.approx(direct, abs=1e-4)
    diffs = [o["reward"] - d for o, d in zip(own, direct, strict=True)]
    gap = summary["image_ablation"]
    mean = sum(diffs) / 5
    assert gap["mode"] == "shuffle" and gap["n"] == 5
    assert gap["gap"] == pytest.approx(mean, abs=1e-4)
    assert gap["sem"] == pytest.approx(math.sqrt(sum((d - mean) ** 2 for d in diffs) / 4 / 5), abs=1e-4)
    assert "Image ablation (shuffle" in (out / "table.md").read_text()


def test_scoring_the_written_samples_reproduces_the_table_with_baseline_and_curves(
    first_run, scorer, tmp_path
):
    out, first = first_run
    state = tmp_path / "grpo" / "checkpoint-3"
    state.mkdir(parents=True)
    history = [{"step": s, "loss": 0.1 / s, "reward": -1.6 + 0.1 * s, "reward_std": 0.1} for s in (1, 2, 3)]
    TrainerState(global_step=3, log_history=history).save_to_json(str(state / "trainer_state.json"))
    config = EvaluateConfig(
        hypotheses_file=str(out / "samples.jsonl"),
        output_dir=str(tmp_path / "rescored"),
        baseline=str(out),
        training_runs=[str(tmp_path / "grpo")],
        progress=False,
        meteor=first["metrics"]["METEOR"] is not None,
    )
    summary = evaluate.main(config, scorer=scorer)
    for key in TABLE_KEYS:
        if first["metrics"][key] is None:
            assert summary["metrics"][key] is None
        else:
            assert summary["metrics"][key] == pytest.approx(first["metrics"][key], abs=1e-4), key
    assert summary["synthetic"] is True  # carried over from the rows of the file
    assert summary["baseline"]["name"] == "tiny-policy"
    assert summary["training"]["grpo"]["last_reward"] == pytest.approx(-1.3)
    table = (tmp_path / "rescored" / "table.md").read_text()
    assert "| tiny-policy | change |" in table
    for name in ("metrics.png", "training_curves.png"):
        with Image.open(tmp_path / "rescored" / name) as im:
            assert im.format == "PNG"
    assert summary["data_config"] is None  # the dataset was not needed


def test_references_are_looked_up_by_id_when_the_file_has_none(first_run, scorer, tmp_path):
    out, _ = first_run
    rows = _read_samples(out)
    path = tmp_path / "hyps.jsonl"
    path.write_text(
        "".join(json.dumps({"id": r["id"], "hypothesis": r["hypothesis"]}) + "\n" for r in rows[:3])
    )
    config = EvaluateConfig(
        hypotheses_file=str(path), output_dir=str(tmp_path / "by-id"), meteor=False, progress=False
    )
    data = DataConfig(dataset="synthetic", synthetic_num_test=5, image_size=64)
    summary = evaluate.main(config, data, scorer=scorer)
    scored = _read_samples(tmp_path / "by-id")
    assert [r["reference"] for r in scored] == [r["reference"] for r in rows[:3]]
    assert [r["radcliq_v1"] for r in scored] == pytest.approx([r["radcliq_v1"] for r in rows[:3]], abs=1e-4)
    assert summary["synthetic"] is True and summary["data"]["dataset"] == "synthetic"


def test_config_errors_are_clear():
    with pytest.raises(ValueError, match="exactly one of model_name_or_path"):
        EvaluateConfig()
    with pytest.raises(ValueError, match="exactly one of model_name_or_path"):
        EvaluateConfig(model_name_or_path="m", hypotheses_file="h.jsonl")
    with pytest.raises(ValueError, match="sampled_reward_samples needs a policy"):
        EvaluateConfig(hypotheses_file="h.jsonl", sampled_reward_samples=2)
    with pytest.raises(ValueError, match="batch_size must be >= 1"):
        EvaluateConfig(model_name_or_path="m", batch_size=0)
    with pytest.raises(ValueError, match="no_repeat_ngram_size must be >= 0"):
        EvaluateConfig(model_name_or_path="m", no_repeat_ngram_size=-1)
    with pytest.raises(ValueError, match="image_ablation must be one of"):
        EvaluateConfig(model_name_or_path="m", image_ablation="blank")
    with pytest.raises(ValueError, match="image_ablation needs a policy"):
        EvaluateConfig(hypotheses_file="h.jsonl", image_ablation="shuffle")


@pytest.mark.parametrize(
    "spelling",
    [
        {"scorer_model_dir": "models/scorer", "scorer_device": "cpu", "reward_url": "http://gpu0:8000"},
        {"reward_model_dir": "models/scorer", "reward_device": "cpu", "reward_urls": "http://gpu0:8000"},
    ],
    ids=["old names", "the stages' names"],
)
def test_reward_settings_take_the_old_and_the_stages_names(spelling, tmp_path, monkeypatch):
    """The reward fields are the stages' (reward_model_dir, reward_device, reward_urls); the names evaluate used
    before stay aliases, as flags and as YAML keys."""
    monkeypatch.delenv("RRG_REWARD_URLS", raising=False)
    flags = [item for key, value in spelling.items() for item in (f"--{key}", value)]
    recipe = tmp_path / "evaluate.yaml"
    recipe.write_text(yaml.safe_dump({"hypotheses_file": "h.jsonl", **spelling}))
    for argv in (["--hypotheses_file", "h.jsonl", *flags], ["--config", str(recipe)]):
        config, _ = evaluate.make_parser().parse_args_and_config(args=argv)
        assert config.reward_model_dir == "models/scorer" and config.reward_device == "cpu", argv
        assert config.reward_urls == ["http://gpu0:8000"], argv


def test_no_scorer_and_bad_baseline_fail_before_the_work(tmp_path):
    samples = tmp_path / "s.jsonl"
    samples.write_text(json.dumps({"hypothesis": "a", "reference": "b"}) + "\n")
    with pytest.raises(ValueError, match="no scorer"):
        evaluate.main(
            EvaluateConfig(hypotheses_file=str(samples), output_dir=str(tmp_path / "o"), meteor=False)
        )
    with pytest.raises(FileNotFoundError, match="no summary.json"):
        evaluate.main(
            EvaluateConfig(
                hypotheses_file=str(samples), output_dir=str(tmp_path / "o"), baseline=str(tmp_path)
            )
        )


def test_partial_hypotheses_say_how_many_studies_have_none(first_run, scorer, tmp_path, caplog):
    """Issue 18 case 14: 3 hypotheses for a 5-study split is reported in the log, the title and summary.json."""
    rows = _read_samples(first_run[0])
    path = tmp_path / "hyps.jsonl"
    path.write_text(
        "".join(json.dumps({"id": r["id"], "hypothesis": r["hypothesis"]}) + "\n" for r in rows[:3])
    )
    config = EvaluateConfig(
        hypotheses_file=str(path), output_dir=str(tmp_path / "o"), meteor=False, progress=False
    )
    with caplog.at_level("WARNING", logger="rrg_trl.evaluate"):
        summary = evaluate.main(
            config, DataConfig(dataset="synthetic", synthetic_num_test=5, image_size=64), scorer=scorer
        )
    assert "2 of 5 test studies have no hypothesis" in caplog.text
    assert "(2 of 5 studies have no hypothesis)" in (tmp_path / "o" / "table.md").read_text()
    written = json.loads((tmp_path / "o" / "summary.json").read_text())
    assert written["data"]["studies_without_hypothesis"] == 2 and written["data"]["split_studies"] == 5
    assert summary["data"]["n_samples"] == 3


def test_a_failed_evaluation_leaves_no_empty_output_folder(tmp_path):
    """Issue 18 case 15: the output folder is created only once there are scores to write."""
    samples = tmp_path / "s.jsonl"
    samples.write_text(json.dumps({"hypothesis": "a", "reference": "b"}) + "\n")
    with pytest.raises(ValueError, match="no scorer"):
        evaluate.main(
            EvaluateConfig(hypotheses_file=str(samples), output_dir=str(tmp_path / "o"), meteor=False)
        )
    assert not (tmp_path / "o").exists()


def test_abbreviated_flags_are_refused():
    """Issue 18 case 15: `--batch_siz` must fail like a YAML typo, not be expanded to --batch_size."""
    with pytest.raises(ValueError, match=r"not used by the HfArgumentParser: \['--batch_siz', '2'\]"):
        evaluate.make_parser().parse_args_and_config(args=["--model_name_or_path", "m", "--batch_siz", "2"])
