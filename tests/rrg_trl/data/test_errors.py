import logging

import pytest

from rrg_trl.data.errors import DataError, ProblemLog


def test_raise_mode_names_study_file_and_the_way_out():
    with pytest.raises(DataError) as error:
        ProblemLog("raise").report(
            "iu_xray", "CXR1", "missing_image", "image file not found", file="/x/0.png"
        )
    message = str(error.value)
    assert "iu_xray study 'CXR1'" in message and "/x/0.png" in message and "on_error='skip'" in message


def test_skip_mode_counts_and_logs(caplog):
    log = ProblemLog("skip", max_logged=2)
    with caplog.at_level(logging.WARNING, logger="rrg_trl.data"):
        for index in range(5):
            log.report("mimic_cxr", f"s{index}", "empty_report", "no findings", file=f"s{index}.txt")
        log.kept["train"] += 3
        log.summarise("mimic_cxr")
    assert log.counts == {"empty_report": 5} and log.skipped == 5
    assert len(log.examples["empty_report"]) == 3  # two in full, then the "..." marker
    assert "kept 3 studies, skipped 5" in caplog.text and "empty_report=5" in caplog.text
    assert caplog.text.count("skipping mimic_cxr study") == 2


def test_bad_policy():
    with pytest.raises(ValueError, match="on_error"):
        ProblemLog("ignore")
