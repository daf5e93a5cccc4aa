"""Value types for ``ingest emulator`` flags: each error names the value and what was expected
(argparse adds the flag and exits 2)."""

from __future__ import annotations

import argparse
import math

from ingest.emulator.options import REGION_PATTERN


def fraction(text: str) -> float:
    value = non_negative(text)
    if value > 1.0:
        raise argparse.ArgumentTypeError(f"expected a fraction between 0 and 1, got {text!r}")
    return value


def non_negative(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not value >= 0 or math.isinf(value):  # `not >=` also refuses NaN
        raise argparse.ArgumentTypeError(f"expected a finite number >= 0, got {text!r}")
    return value


def positive(text: str) -> float:
    value = non_negative(text)
    if value == 0:
        raise argparse.ArgumentTypeError(f"expected a number > 0, got {text!r}")
    return value


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a whole number > 0, got {text!r}")
    return value


def port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"expected a port number 0-65535, got {text!r}")
    return value


def region(text: str) -> str:
    if REGION_PATTERN.fullmatch(text) is None:
        raise argparse.ArgumentTypeError(
            f"expected an AWS region name such as us-east-1 or eu-central-1, got {text!r}"
        )
    return text
