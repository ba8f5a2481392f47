"""predict's arguments, checked before any model is loaded (no trained pipeline needed)."""

from __future__ import annotations

import pytest

from smallvision.predict import parse


@pytest.mark.parametrize("top", ["-3", "0", "two"])
def test_top_must_be_a_positive_number_of_classes(top, capsys):
    with pytest.raises(SystemExit) as exit_info:
        parse(["img.png", "--top", top])
    assert exit_info.value.code == 2
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert error.startswith("python -m smallvision.predict: error: argument --top: ")
    assert "give 1 or more" in error or "not a whole number" in error


def test_top_accepts_any_positive_number(capsys):
    assert parse(["img.png", "--top", "1"]).top == 1
    assert parse(["img.png", "--top", "1000"]).top == 1000  # clamped to the class count when predicting
    assert parse(["img.png"]).top == 5
