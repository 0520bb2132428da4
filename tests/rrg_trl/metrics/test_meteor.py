"""METEOR: our Meteor 1.5 driver against pycocoevalcap's, and the honest "unavailable" path.

The parity tests need a Java runtime and the jar from the pycocoevalcap wheel; without them they skip
with the reason, and the unavailable-path tests still run.
"""

from __future__ import annotations

import gzip

import pytest

from rrg_trl.metrics import Meteor, MeteorError, compute_nlg_metrics, meteor_unavailable_reason
from rrg_trl.metrics.meteor import JAR_ENV, PARAPHRASE_FILE, find_java
from tests.rrg_trl.metrics.pairs import as_coco

REASON = meteor_unavailable_reason()
needs_meteor = pytest.mark.skipif(REASON is not None, reason=REASON or "")


@pytest.fixture(scope="module")
def ours():
    with Meteor() as scorer:
        yield scorer


@pytest.fixture(scope="module")
def reference():
    from pycocoevalcap.meteor.meteor import Meteor as ReferenceMeteor

    return ReferenceMeteor()


def _protocol_safe(hyps, refs):
    """pycocoevalcap hangs on line breaks and splits references on '|||': keep only pairs it handles."""
    keep = [
        i
        for i, (h, rs) in enumerate(zip(hyps, refs, strict=True))
        if not any(c in t for t in (h, *rs) for c in "\r\n") and not any("|||" in r for r in rs)
    ]
    return [hyps[i] for i in keep], [refs[i] for i in keep]


def _check_parity(ours, reference, hyps, refs):
    hyps, refs = _protocol_safe(hyps, refs)
    ref_corpus, ref_per_sample = reference.compute_score(*as_coco(hyps, refs))
    got = ours.score(hyps, refs)
    # Both sides read the same jar's printed doubles: equality is exact.
    assert got.corpus == ref_corpus
    assert got.per_sample == ref_per_sample
    return got


@needs_meteor
@pytest.mark.parity
def test_meteor_matches_pycocoevalcap_on_synthetic_text(ours, reference, synthetic):
    got = _check_parity(ours, reference, *synthetic)
    assert 0.0 < got.corpus < 1.0
    assert len(got.per_sample) == len(synthetic[0])


@needs_meteor
@pytest.mark.parity
def test_meteor_matches_pycocoevalcap_on_iu_reports(ours, reference, iu_pairs):
    _check_parity(ours, reference, *iu_pairs)


@needs_meteor
@pytest.mark.parity
def test_meteor_edge_cases_match_pycocoevalcap(ours, reference):
    hyps = ["", "no", "no acute process .", "ok", "no acute process .", "x ||| y", "a  b   c"]
    refs = [
        ["no acute process ."],
        ["no acute process ."],
        ["no acute process ."],
        ["ok"],
        [""],
        ["x y"],
        ["a b c"],
    ]
    _check_parity(ours, reference, hyps, refs)


@needs_meteor
def test_line_breaks_are_spaces_instead_of_a_hang(ours):
    """pycocoevalcap would block forever on these; Meteor's -norm tokeniser reads them as spaces."""
    broken = ours.score(
        ["no acute\nprocess .", "heart\r\nsize normal"], ["no acute process .", "heart size\nnormal"]
    )
    spaced = ours.score(
        ["no acute process .", "heart  size normal"], ["no acute process .", "heart size normal"]
    )
    assert broken == spaced


@needs_meteor
def test_nlg_table_reuses_a_running_meteor(ours, synthetic):
    hyps, refs = _protocol_safe(*synthetic)
    table = compute_nlg_metrics(hyps, refs, meteor=ours)
    assert table.unavailable == {}
    assert table.corpus["METEOR"] == ours.score(hyps, refs).corpus


def test_missing_java_is_reported_not_faked(tmp_path):
    missing = str(tmp_path / "no-java-here")
    reason = meteor_unavailable_reason(java=missing)
    assert reason is not None and "Java" in reason
    with pytest.raises(MeteorError, match="Java"):
        Meteor(java=missing)


def test_missing_jar_leaves_meteor_none_with_the_reason(monkeypatch, tmp_path):
    monkeypatch.setenv(JAR_ENV, str(tmp_path / "meteor-1.5.jar"))
    table = compute_nlg_metrics(["no acute process ."], ["no acute process ."])
    assert table.corpus["METEOR"] is None and table.per_sample["METEOR"] is None
    assert "not found" in table.unavailable["METEOR"]
    assert table.corpus["BLEU_4"] is not None and table.corpus["ROUGE_L"] is not None


@pytest.mark.skipif(find_java() is None, reason="no Java runtime")
def test_a_broken_jar_raises_instead_of_hanging(tmp_path):
    """A real JVM on a corrupt jar: the driver reports the JVM's own error, it does not wait forever."""
    jar = tmp_path / "meteor-1.5.jar"
    jar.write_bytes(b"not a jar")
    (tmp_path / PARAPHRASE_FILE).parent.mkdir()
    with gzip.open(tmp_path / PARAPHRASE_FILE, "wb"):
        pass
    with Meteor(jar=jar, timeout=60) as scorer, pytest.raises(MeteorError, match="corrupt jarfile"):
        scorer.score(["a"], ["a"])
    table = compute_nlg_metrics(["a"], ["a"], meteor=Meteor(jar=jar, timeout=60))
    assert table.corpus["METEOR"] is None and table.unavailable["METEOR"].startswith("METEOR failed")


@needs_meteor
def test_a_silent_process_times_out_and_is_stopped():
    """No answer in time (here: the JVM is still loading) raises, and the desynchronised process is killed."""
    with Meteor(timeout=0.01) as scorer:
        with pytest.raises(MeteorError, match="no answer within"):
            scorer.score(["a"], ["a"])
        with pytest.raises(MeteorError, match="not running"):
            scorer.score(["a"], ["a"])
