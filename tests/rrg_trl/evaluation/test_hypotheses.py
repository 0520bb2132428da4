"""Reading existing outputs: references inline or by study id; bad lines are named."""

from __future__ import annotations

import json

import pytest
from datasets import Dataset

from rrg_trl.evaluation.hypotheses import samples_from_jsonl


def _write(path, rows):
    path.write_text("\n".join(r if isinstance(r, str) else json.dumps(r) for r in rows) + "\n")
    return path


@pytest.fixture
def split():
    return Dataset.from_dict(
        {
            "id": ["s1", "s2"],
            "report": ["No effusion.", "Small left effusion."],
            "synthetic": [True, True],
            "source": ["synthetic", "synthetic"],
            "split": ["test", "test"],
        }
    )


def test_inline_references_keep_their_labels(tmp_path):
    path = _write(
        tmp_path / "h.jsonl",
        [
            {"id": "a", "hypothesis": "x", "reference": "y", "synthetic": True, "source": "synthetic"},
            "",
            {"hypothesis": "p", "reference": "q"},
        ],
    )
    a, b = samples_from_jsonl(path)
    assert (a.id, a.hypothesis, a.reference, a.synthetic, a.source) == ("a", "x", "y", True, "synthetic")
    assert (b.id, b.synthetic, b.source) == ("3", False, "hypotheses file")  # id = line number


def test_custom_keys(tmp_path):
    path = _write(tmp_path / "h.jsonl", [{"pred": "x", "gt": "y"}])
    (s,) = samples_from_jsonl(path, hypothesis_key="pred", reference_key="gt")
    assert (s.hypothesis, s.reference) == ("x", "y")


def test_references_by_id_from_the_split_which_is_loaded_only_when_needed(tmp_path, split):
    path = _write(tmp_path / "h.jsonl", [{"id": "s2", "hypothesis": "Left effusion."}])
    calls = []

    def load():
        calls.append(1)
        return split

    (s,) = samples_from_jsonl(path, dataset=load)
    assert (s.reference, s.synthetic, s.source, s.split) == (
        "Small left effusion.",
        True,
        "synthetic",
        "test",
    )
    assert calls == [1]
    inline = _write(tmp_path / "i.jsonl", [{"hypothesis": "a", "reference": "b"}])
    samples_from_jsonl(inline, dataset=load)
    assert calls == [1]


@pytest.mark.parametrize(
    ("lines", "message"),
    [
        (['{"hypothesis": "a", "reference": "b"}', "{not json"], r"h.jsonl:2: not valid JSON"),
        (['["a", "b"]'], r"h.jsonl:1: expected a JSON object"),
        (['{"hypothesis": 3, "reference": "b"}'], r"h.jsonl:1: field 'hypothesis' must be a string"),
        (['{"hypothesis": "a"}'], r"h.jsonl:1: no 'reference' string"),
        ([""], "holds no hypotheses"),
    ],
)
def test_bad_lines_are_named(tmp_path, lines, message):
    with pytest.raises(ValueError, match=message):
        samples_from_jsonl(_write(tmp_path / "h.jsonl", lines))


def test_unknown_or_missing_ids_are_named(tmp_path, split):
    with pytest.raises(ValueError, match=r"h.jsonl:1: id 'nope' is not a study"):
        samples_from_jsonl(_write(tmp_path / "h.jsonl", [{"id": "nope", "hypothesis": "a"}]), dataset=split)
    with pytest.raises(ValueError, match=r"h.jsonl:1: no 'reference' and no 'id'"):
        samples_from_jsonl(_write(tmp_path / "h.jsonl", [{"hypothesis": "a"}]), dataset=split)


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        samples_from_jsonl(tmp_path / "absent.jsonl")


def test_a_repeated_id_is_refused_naming_both_lines(tmp_path, split):
    """Issue 18 case 2: a study listed twice would weigh twice in corpus BLEU / CIDEr."""
    rows = [{"id": "s1", "hypothesis": "a"}, {"id": "s2", "hypothesis": "b"}, {"id": "s1", "hypothesis": "c"}]
    with pytest.raises(ValueError, match=r"h.jsonl:3: id 's1' repeats line 1"):
        samples_from_jsonl(_write(tmp_path / "h.jsonl", rows), dataset=split)
    inline = [{**r, "reference": "r"} for r in rows]
    with pytest.raises(ValueError, match=r"h.jsonl:3: id 's1' repeats line 1"):
        samples_from_jsonl(_write(tmp_path / "h.jsonl", inline))


def test_some_lines_with_references_and_some_without_is_refused(tmp_path, split):
    """Issue 18 case 15: the inline references must not be silently replaced by looked-up ones."""
    rows = [{"id": "s1", "hypothesis": "a", "reference": "mine"}, {"id": "s2", "hypothesis": "b"}]
    with pytest.raises(
        ValueError, match=r"h.jsonl: 1 of 2 lines carry a 'reference' \(e.g. line 1\).*line 2"
    ):
        samples_from_jsonl(_write(tmp_path / "h.jsonl", rows), dataset=split)
