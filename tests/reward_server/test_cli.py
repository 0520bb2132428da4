"""``rrg-reward``: the parser's contract, bind safety before loading, make-tiny, offline score, real serve."""

from __future__ import annotations

import json
import signal

import httpx
import pytest

from reward_server.cli import build_parser, main
from reward_server.radcliq.model_files import RANDOM_WEIGHTS_NOTICE, ModelFiles, read_checksums
from tests.reward_server.live import free_port, grpo_batch, spawn_server, tiny_scorer, wait_ready


def test_serve_flags_of_the_contract():
    args = build_parser().parse_args(
        [
            "serve",
            "--model-dir",
            "m",
            "--device",
            "cpu",
            "--host",
            "127.0.0.1",
            "--port",
            "8001",
            "--max-batch-pairs",
            "32",
            "--max-wait-ms",
            "3.5",
            "--api-key-env",
            "KEY",
            "--dtype",
            "bfloat16",
            "--max-pairs-per-request",
            "100",
            "--max-text-chars",
            "50",
            "--max-queue-pairs",
            "1000",
            "--openrlhf-strip",
            "</s>",
            "--openrlhf-strip",
            "<|im_end|>",
            "--policy-tokenizer",
            "policy/",
        ]
    )
    assert (args.command, str(args.model_dir), args.device, args.host, args.port) == (
        "serve",
        "m",
        "cpu",
        "127.0.0.1",
        8001,
    )
    assert (args.max_batch_pairs, args.max_wait_ms, args.api_key_env, args.dtype) == (
        32,
        3.5,
        "KEY",
        "bfloat16",
    )
    assert (args.max_pairs_per_request, args.max_text_chars, args.max_queue_pairs) == (100, 50, 1000)
    assert args.openrlhf_strip == ["</s>", "<|im_end|>"]
    assert str(args.policy_tokenizer) == "policy/"
    defaults = build_parser().parse_args(["serve", "--model-dir", "m"])
    assert (defaults.host, defaults.port, defaults.api_key_env) == ("127.0.0.1", 8000, None)


def test_other_subcommands_parse():
    p = build_parser()
    tiny = p.parse_args(["make-tiny", "d", "--seed", "3", "--size", "base"])
    assert (tiny.command, str(tiny.dir), tiny.seed, tiny.size) == ("make-tiny", "d", 3, "base")
    assert p.parse_args(["download", "d"]).command == "download"
    score = p.parse_args(["score", "--model-dir", "m", "--jsonl", "in.jsonl", "--out", "o.jsonl"])
    assert (score.command, str(score.jsonl), str(score.out)) == ("score", "in.jsonl", "o.jsonl")
    with pytest.raises(SystemExit):
        p.parse_args(["serve"])  # --model-dir is required


def test_non_loopback_without_key_is_refused_before_loading(tmp_path):
    missing = tmp_path / "no-such-dir"  # never read: the refusal comes first
    with pytest.raises(SystemExit, match="refusing to bind '0.0.0.0' without authentication"):
        main(["serve", "--model-dir", str(missing), "--host", "0.0.0.0"])


def test_unloadable_policy_tokenizer_is_refused_before_loading(tmp_path):
    with pytest.raises(SystemExit, match="cannot load the policy tokenizer from"):
        main(["serve", "--model-dir", str(tmp_path / "no-kit"), "--policy-tokenizer", str(tmp_path / "none")])


def test_api_key_env_must_be_set(tmp_path, monkeypatch):
    monkeypatch.delenv("RRG_UNSET_KEY", raising=False)
    with pytest.raises(SystemExit, match="RRG_UNSET_KEY: that environment variable is unset"):
        main(["serve", "--model-dir", str(tmp_path), "--api-key-env", "RRG_UNSET_KEY"])


def test_bad_limits_are_refused(tmp_path):
    with pytest.raises(SystemExit, match="max_queue_pairs"):
        main(
            [
                "serve",
                "--model-dir",
                str(tmp_path),
                "--max-pairs-per-request",
                "100",
                "--max-queue-pairs",
                "10",
            ]
        )


@pytest.mark.slow
def test_make_tiny_writes_a_complete_kit(tmp_path, tiny_model_dir, capsys):
    assert main(["make-tiny", str(tmp_path / "kit"), "--seed", "0"]) == 0
    assert capsys.readouterr().out.strip() == str(tmp_path / "kit")
    ModelFiles.locate(tmp_path / "kit", verify=True)  # every file present and matching its checksum
    assert read_checksums(tmp_path / "kit").keys() == read_checksums(tiny_model_dir).keys()


def test_score_files_and_jsonl(tmp_path, tiny_model_dir, capsys):
    hyps, refs = grpo_batch(2, group=3, seed=9)
    expected = tiny_scorer(str(tiny_model_dir)).score(hyps, refs)
    (tmp_path / "h.txt").write_text("\n".join(hyps) + "\n")
    (tmp_path / "r.txt").write_text("\n".join(refs) + "\n")
    main(
        [
            "score",
            "--model-dir",
            str(tiny_model_dir),
            "--device",
            "cpu",
            "--hypotheses",
            str(tmp_path / "h.txt"),
            "--references",
            str(tmp_path / "r.txt"),
            "--out",
            str(tmp_path / "a.jsonl"),
            "--batch-size",
            "4",
        ]
    )
    rows = [json.loads(line) for line in (tmp_path / "a.jsonl").read_text().splitlines()]
    assert [r["index"] for r in rows] == list(range(6))
    for row, e in zip(rows, expected, strict=True):
        assert row["radcliq"] == pytest.approx(e["radcliq"], abs=1e-4)
        assert row["reward"] == -row["radcliq"]
        assert row["random_weights"] is True and row["random_weights_notice"] == RANDOM_WEIGHTS_NOTICE
    assert RANDOM_WEIGHTS_NOTICE in capsys.readouterr().err

    with open(tmp_path / "in.jsonl", "w") as f:
        for i, (h, r) in enumerate(zip(hyps, refs, strict=True)):
            f.write(json.dumps({"id": f"s{i}", "pred": h, "gt": r}) + "\n")
    main(
        [
            "score",
            "--model-dir",
            str(tiny_model_dir),
            "--device",
            "cpu",
            "--jsonl",
            str(tmp_path / "in.jsonl"),
            "--hypothesis-key",
            "pred",
            "--reference-key",
            "gt",
            "--out",
            str(tmp_path / "b.jsonl"),
        ]
    )
    rows = [json.loads(line) for line in (tmp_path / "b.jsonl").read_text().splitlines()]
    assert [r["id"] for r in rows] == [f"s{i}" for i in range(6)]
    for row, e in zip(rows, expected, strict=True):
        for k in ("radcliq", "radgraph", "bertscore", "semb", "bleu2"):
            assert row[k] == pytest.approx(e[k], abs=1e-4)


def test_score_input_errors(tmp_path, tiny_model_dir):
    (tmp_path / "h.txt").write_text("a\nb\n")
    (tmp_path / "r.txt").write_text("a\n")
    with pytest.raises(SystemExit, match="has 2 lines but"):
        main(
            [
                "score",
                "--model-dir",
                str(tiny_model_dir),
                "--hypotheses",
                str(tmp_path / "h.txt"),
                "--references",
                str(tmp_path / "r.txt"),
            ]
        )
    (tmp_path / "in.jsonl").write_text(json.dumps({"hypothesis": "a", "reference": None}) + "\n")
    with pytest.raises(SystemExit, match=r"in.jsonl:1: field 'reference' must be a string"):
        main(["score", "--model-dir", str(tiny_model_dir), "--jsonl", str(tmp_path / "in.jsonl")])
    with pytest.raises(SystemExit, match="give --hypotheses FILE and --references FILE"):
        main(["score", "--model-dir", str(tiny_model_dir)])


@pytest.mark.slow
def test_serve_end_to_end_with_auth_and_sigterm(tiny_model_dir):
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    proc = spawn_server(
        tiny_model_dir,
        port,
        "--api-key-env",
        "RRG_TEST_KEY",
        "--max-pairs-per-request",
        "16",
        env={"RRG_TEST_KEY": "s3cret"},
    )
    try:
        wait_ready(url, proc)
        hyps, refs = grpo_batch(1, group=4)
        payload = {"hypotheses": hyps, "references": refs}
        assert httpx.post(url + "/v1/score", json=payload).status_code == 401
        r = httpx.post(
            url + "/v1/score", json=payload, headers={"Authorization": "Bearer s3cret"}, timeout=60
        )
        assert r.status_code == 200
        expected = tiny_scorer(str(tiny_model_dir)).score(hyps, refs)
        assert r.json()["rewards"] == pytest.approx([-e["radcliq"] for e in expected], abs=1e-4)
        info = httpx.get(url + "/v1/info", headers={"Authorization": "Bearer s3cret"}).json()
        assert info["server"]["limits"]["max_pairs_per_request"] == 16
        proc.send_signal(signal.SIGTERM)
        # uvicorn shuts down gracefully, then re-raises the signal it caught (exit status -SIGTERM).
        assert proc.wait(30) in (0, -signal.SIGTERM)
        assert "Traceback" not in proc.stdout.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_score_rows_of_an_official_layout_are_not_labelled(tmp_path, official_layout_dir, capsys):
    (tmp_path / "h.txt").write_text("No effusion.\nSmall effusion.\n")
    (tmp_path / "r.txt").write_text("No effusion.\nNo pneumothorax.\n")
    args = ["score", "--model-dir", str(official_layout_dir), "--device", "cpu"]
    main([*args, "--hypotheses", str(tmp_path / "h.txt"), "--references", str(tmp_path / "r.txt")])
    out, err = capsys.readouterr()
    rows = [json.loads(line) for line in out.splitlines()]
    assert len(rows) == 2 and all(
        r["random_weights"] is False and "random_weights_notice" not in r for r in rows
    )
    assert "RANDOM" not in err
