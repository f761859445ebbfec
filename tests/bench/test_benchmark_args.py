"""The bench scripts' shared argument checks (bench/_runner.py)."""

import argparse

import pytest

from _runner import seed_arg


def test_seed_arg_accepts_non_negative_integers():
    assert seed_arg("0") == 0
    assert seed_arg("7") == 7


@pytest.mark.parametrize("text", ["-1", "x", "1.5", ""])
def test_seed_arg_rejects_the_rest_with_a_message_naming_the_value(text):
    with pytest.raises(argparse.ArgumentTypeError, match="non-negative integers"):
        seed_arg(text)
