"""How the book prints numbers: one formatter for every table, caption and sentence.

* A mean ± sd: the sd with two significant digits and the mean to the same decimal place
  (``0.905 ± 0.012``, ``3,364 ± 22``); an sd below the mean's fourth significant digit prints
  as zero at that place (``4.160 ± 0.000``). A no-break space joins "±" to the sd, so a narrow
  table cell breaks only before the "±", never inside a number.
* Any other number: three significant digits, never fewer than all of its integer digits
  (``0.0156``, ``367,624``).
* Counts: integers with thousands separators (``18,898,944``).
* E-notation only for quantities whose scale needs it (nonzero and below 10⁻³ in size, such as
  an identity error of ``2.4e-08``).
* NaN prints as ``MISSING`` ("–"); a page that shows one says why in a footnote.
* A table column uses one notation (:func:`column`): where some of its numbers need E-notation
  and others do not, all of them take it if every number is below 1 in size, and none does
  otherwise (``0.000667`` beside ``56.2``).
"""

from __future__ import annotations

import math

MISSING = "–"
SMALL = 1e-3
NBSP = "\u00a0"


def _decimals(x: float, significant: int) -> int:
    """Decimal places that show ``significant`` significant digits of ``x`` (≥ 0)."""
    if x == 0:
        return significant - 1
    return max(0, significant - 1 - math.floor(math.log10(abs(x))))


def _fixed(x: float, decimals: int) -> str:
    return f"{x:,.{decimals}f}"


def number(x, significant: int = 3) -> str:
    """``x`` with ``significant`` significant digits, thousands separators, "–" for NaN."""
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return MISSING
    x = float(x)
    if math.isnan(x):
        return MISSING
    if math.isinf(x):
        return "∞" if x > 0 else "−∞"
    if x != 0 and abs(x) < SMALL:
        return f"{x:.{significant - 1}e}"
    text = _fixed(x, _decimals(x, significant))
    return "0" if float(text.replace(",", "")) == 0 else text


def column(values, significant: int = 3) -> list[str]:
    """A table column of real numbers in one notation: each as :func:`number` prints it, unless
    that mixes E-notation with fixed. Then every number takes E-notation when all are below 1 in
    size (``9.50e-07``, ``7.27e-01``), and fixed notation with ``significant`` significant digits
    otherwise (``0.000667``, ``56.2``). NaN stays "–"."""
    values = [float(v) for v in values]
    finite = [v for v in values if math.isfinite(v)]
    small = [v for v in finite if v != 0 and abs(v) < SMALL]
    if not small or len(small) == len([v for v in finite if v != 0]):
        return [number(v, significant) for v in values]
    if max(abs(v) for v in finite) < 1:
        return [f"{v:.{significant - 1}e}" if math.isfinite(v) and v != 0 else number(v, significant)
                for v in values]
    return [_fixed(v, _decimals(v, significant)) if v in small else number(v, significant) for v in values]


def count(n) -> str:
    """An integer count with thousands separators; "–" for NaN."""
    if n is None or (isinstance(n, float) and math.isnan(n)):
        return MISSING
    return f"{round(float(n)):,}"


def mean_sd(mean, sd) -> str:
    """"mean ± sd": the sd to two significant digits, the mean to the same decimal place.

    A one-seed value (sd NaN) prints as the number alone; a NaN mean as "–".
    """
    if mean is None or math.isnan(float(mean)):
        return MISSING
    mean = float(mean)
    if sd is None or math.isnan(float(sd)):
        return number(mean)
    sd = abs(float(sd))
    if mean != 0 and abs(mean) < SMALL and sd < SMALL:
        return f"{mean:.2e} ±{NBSP}{sd:.1e}"
    cap = _decimals(mean, 4) if mean != 0 else 3
    decimals = min(_decimals(sd, 2), cap) if sd > 0 else cap
    return f"{_fixed(mean, decimals)} ±{NBSP}{_fixed(sd, decimals)}"
