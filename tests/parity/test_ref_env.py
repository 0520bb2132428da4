"""The reference runner pins the reference's device, so benchmarks compare like with like."""

import pytest

from tests.parity.ref_env import _visible_devices


@pytest.mark.parametrize(
    ("device", "visible", "expected"),
    [
        ("cpu", None, ""),
        ("cpu", "0,1", ""),
        ("cuda", None, "0"),
        ("cuda", "3,5", "3,5"),
        ("cuda:1", None, "1"),
        ("cuda:1", "3,5", "5"),
    ],
)
def test_the_reference_sees_exactly_the_chosen_device(device, visible, expected):
    assert _visible_devices(device, visible) == expected


def test_bad_devices_are_named():
    with pytest.raises(ValueError, match="'cuda:2' is not among the visible GPUs"):
        _visible_devices("cuda:2", "3,5")
    with pytest.raises(ValueError, match="not 'mps'"):
        _visible_devices("mps", None)
