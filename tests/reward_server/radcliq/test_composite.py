"""The composite: constants equal the references', and published leaderboard rows are reproduced."""

from __future__ import annotations

import numpy as np
import pytest

from reward_server.radcliq.composite import (
    RADCLIQ_V0,
    RADCLIQ_V1,
    get_model,
    radcliq_from_components,
    to_reward,
)

# ReXrank MIMIC-CXR table (rajpurkarlab/ReXrank results/result_mimic-cxr.csv): BLEU-2, BERTScore, s_emb,
# RadGraph, RadCliQ-v0, RadCliQ-v1, each published to 3 decimals.
REXRANK = {
    "MedVersa": (0.193, 0.430, 0.315, 0.273, 3.337, 1.088),
    "RaDialog": (0.112, 0.322, 0.381, 0.168, 3.647, 1.330),
    "RGRG": (0.125, 0.323, 0.337, 0.176, 3.723, 1.363),
    "CheXagent": (0.094, 0.304, 0.331, 0.146, 3.816, 1.437),
    "GPT4V": (0.065, 0.204, 0.190, 0.085, 4.457, 1.819),
}


@pytest.mark.parametrize("name", sorted(REXRANK))
def test_reproduces_rexrank_rows(name):
    bleu, bs, semb, rg, v0, v1 = REXRANK[name]
    # Features are rounded to 3 decimals in the table, so agreement is to that rounding (≤ ~0.004).
    assert radcliq_from_components(rg, bs, semb, bleu, "v1") == pytest.approx(v1, abs=4e-3)
    assert radcliq_from_components(rg, bs, semb, bleu, "v0") == pytest.approx(v0, abs=4e-3)


def test_v1_matches_radeval_hardcoded_scaler():
    """radeval 2.2.1 hard-codes v1 rounded to 8 digits; the predictions agree to ~1e-8."""
    pytest.importorskip("sklearn")
    from sklearn.preprocessing import StandardScaler

    rng = np.random.default_rng(0)
    x = np.column_stack(
        [rng.uniform(0, 1, 500), rng.uniform(-1, 1, 500), rng.uniform(-1, 1, 500), rng.uniform(0, 1, 500)]
    )
    scaler = StandardScaler()
    scaler.mean_ = np.array([0.53792312, 0.61757256, 0.76479421, 0.44738335])
    scaler.scale_ = np.array([0.30282584, 0.22430938, 0.25394391, 0.29892717])
    scaler.var_ = scaler.scale_**2
    scaler.n_features_in_ = 4
    coefs = np.array([-3.77083683e-01, -3.70300100e-01, -2.52616218e-01, 4.31504841e-12, 2.46655256e-10])
    ref = np.hstack([scaler.transform(x), np.ones((500, 1))]) @ coefs
    assert np.max(np.abs(RADCLIQ_V1.predict(x) - ref)) < 1e-7


def test_linear_system_score_is_mean_of_pairs():
    rng = np.random.default_rng(1)
    x = rng.uniform(0, 1, (50, 4))
    for model in (RADCLIQ_V1, RADCLIQ_V0):
        assert model.predict(x).mean() == pytest.approx(model.predict(x.mean(0, keepdims=True))[0], abs=1e-12)


def test_lower_is_better_and_bleu_weight_negligible_in_v1():
    assert radcliq_from_components(1, 1, 1, 1) < radcliq_from_components(0.5, 0.5, 0.5, 0.5)
    assert abs(radcliq_from_components(0.5, 0.5, 0.5, 1) - radcliq_from_components(0.5, 0.5, 0.5, 0)) < 1e-10
    assert (
        abs(radcliq_from_components(0.5, 0.5, 0.5, 1, "v0") - radcliq_from_components(0.5, 0.5, 0.5, 0, "v0"))
        > 0.5
    )


def test_bad_version_and_shape():
    with pytest.raises(ValueError, match="unknown RadCliQ version"):
        get_model("v2")
    with pytest.raises(ValueError, match=r"shape \[n, 4\]"):
        RADCLIQ_V1.predict(np.zeros((3, 5)))


def test_reward_is_negative_radcliq_as_a_float_and_missing_stays_missing():
    reward = to_reward(np.float64(1.25))
    assert reward == -1.25 and type(reward) is float  # JSON- and tensor-ready
    assert to_reward(None) is None
    better, worse = radcliq_from_components(0.6, 0.6, 0.6, 0.3), radcliq_from_components(0.1, 0.1, 0.1, 0.1)
    assert to_reward(better) > to_reward(worse)
