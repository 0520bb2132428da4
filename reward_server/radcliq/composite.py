"""RadCliQ's fixed linear models over the four per-pair features (Yu et al., Patterns 2023).

The constants are the exact float64 values stored in rajpurkarlab/CXR-Report-Metric's pickles
(``radcliq-v1.pkl``: StandardScaler + coefficients; ``normalizer.pkl`` + ``composite_metric_model.pkl`` for v0),
decoded without unpickling. radeval 2.2.1 hard-codes v1 rounded to 8 digits; the two agree to ~1e-9.
Feature order everywhere: ``[radgraph, bertscore, semb, bleu2]``. Lower RadCliQ is better.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

FEATURES = ("radgraph", "bertscore", "semb", "bleu2")
SCORE_KEYS = ("radcliq", *FEATURES)  # one scored pair: RadCliQ and its features


@dataclass(frozen=True)
class RadCliQModel:
    """``z = (x - mean) / scale``; ``radcliq = z @ coef + intercept`` (float64, sklearn's operation order)."""

    version: str
    mean: tuple[float, float, float, float]
    scale: tuple[float, float, float, float]
    coef: tuple[float, float, float, float]
    intercept: float

    def predict(self, features: np.ndarray) -> np.ndarray:
        """RadCliQ for an ``[n, 4]`` feature matrix (float64)."""
        x = np.asarray(features, dtype=np.float64)
        if x.ndim != 2 or x.shape[1] != 4:
            raise ValueError(f"features must have shape [n, 4] in order {FEATURES}, got {x.shape}")
        z = (x - np.asarray(self.mean)) / np.asarray(self.scale)
        # v1 was fitted as a linear model over [z, 1] (the intercept is the 5th coefficient).
        return np.hstack([z, np.ones((len(z), 1))]) @ np.asarray((*self.coef, self.intercept))


RADCLIQ_V1 = RadCliQModel(
    version="v1",
    mean=(0.5379231241355762, 0.6175725628125001, 0.7647942121140658, 0.44738335396242174),
    scale=(0.3028258411486429, 0.22430938459304575, 0.2539439110169773, 0.2989271671041838),
    coef=(-0.37708368261038905, -0.37030009974480316, -0.25261621789593225, 4.315048405024756e-12),
    intercept=2.466552561323256e-10,
)

RADCLIQ_V0 = RadCliQModel(
    version="v0",
    mean=(0.5398376019082272, 0.6312549595000001, 0.7716797866672277, 0.4607372064809605),
    scale=(0.3018344440559102, 0.22466950746141123, 0.24750333805236252, 0.30336670936092264),
    coef=(-0.4796252644863446, -0.6762170542369337, -0.46366575161751994, 0.2165861905287535),
    intercept=1.641666666666666,
)

MODELS = {"v1": RADCLIQ_V1, "v0": RADCLIQ_V0}


def get_model(version: str) -> RadCliQModel:
    try:
        return MODELS[version]
    except KeyError:
        raise ValueError(f"unknown RadCliQ version {version!r}; expected one of {sorted(MODELS)}") from None


def radcliq_from_components(
    radgraph: float, bertscore: float, semb: float, bleu2: float, version: str = "v1"
) -> float:
    """RadCliQ of one pair from its four features (lower is better; reward = -RadCliQ)."""
    return float(get_model(version).predict(np.array([[radgraph, bertscore, semb, bleu2]]))[0])


def to_reward(radcliq: float | None) -> float | None:
    """The reward of a pair: -RadCliQ, since lower RadCliQ is better; a missing RadCliQ stays missing (None)."""
    return None if radcliq is None else -float(radcliq)
