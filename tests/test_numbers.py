"""The book's number formatter, against values worked out by hand from its stated rules."""

import math

import pytest

from dfsae.paper.numbers import MISSING, count, mean_sd, number


@pytest.mark.parametrize("mean,sd,text", [
    (0.9051, 0.0123, "0.905 ± 0.012"),          # sd to two significant digits, mean to its place
    (3363.7, 22.4, "3,364 ± 22"),               # thousands separator, no e-notation
    (4.16, 2.5e-12, "4.160 ± 0.000"),           # a negligible sd is zero at the mean's 4th digit
    (0.0156, 3.3e-9, "0.01560 ± 0.00000"),
    (55.9, 1.34, "55.9 ± 1.3"),
    (24.0, 0.0, "24.00 ± 0.00"),
    (0.91, math.nan, "0.910"),                  # one seed: no sd
    (math.nan, 0.0, MISSING),
    (2.4e-8, 1.1e-9, "2.40e-08 ± 1.1e-09"),     # scale needs e-notation
])
def test_mean_sd(mean, sd, text):
    assert mean_sd(mean, sd) == text.replace("± ", "±\u00a0")   # "±" is joined to the sd


@pytest.mark.parametrize("x,text", [
    (367624.452, "367,624"), (0.0156, "0.0156"), (6.5612, "6.56"), (1.0, "1.00"),
    (0.0, "0"), (2.4e-8, "2.40e-08"), (math.nan, MISSING), (-0.123456, "-0.123"),
])
def test_number(x, text):
    assert number(x) == text


def test_counts_get_thousands_separators():
    assert count(18898944) == "18,898,944" and count(7.0) == "7" and count(math.nan) == MISSING


def test_no_format_prints_nan_or_e_notation_for_ordinary_numbers():
    for x in (1e-3, 0.5, 12.25, 9999.5, 1e6 + 0.5):
        assert "e" not in number(x) and "nan" not in number(x)


def test_a_column_keeps_one_notation():
    from dfsae.paper.numbers import column

    # no mix: each number as number() prints it
    assert column([0.0781, 0.082, 56.2]) == ["0.0781", "0.0820", "56.2"]
    assert column([9.5e-07, 6.03e-07]) == ["9.50e-07", "6.03e-07"]
    # a mix below 1 in size: all in E-notation
    assert column([9.5e-07, 0.00293, 0.727]) == ["9.50e-07", "2.93e-03", "7.27e-01"]
    # a mix with a number of 1 or more: all fixed, three significant digits each
    assert column([0.000667, 56.2, 56.1]) == ["0.000667", "56.2", "56.1"]
    assert column([-9.22e-06, 1.5]) == ["-0.00000922", "1.50"]
    # zeros and NaN keep their own forms
    assert column([0.0, float("nan"), 5e-4, 0.5]) == ["0", "–", "5.00e-04", "5.00e-01"]
