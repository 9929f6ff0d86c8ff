#!/usr/bin/env python3
"""Reference p-values for the judge's Mann-Whitney U test (src/analysis/judge.rs).

Writes reference.json beside this script: for each pair of samples (x = canary, y = baseline),
scipy.stats.mannwhitneyu's U statistic of x and its two-sided p-value by each method, given
explicitly: method="exact" (only where there are no ties: the exact distribution assumes
none), method="asymptotic" (normal approximation, tie correction, continuity correction) and
method="auto" (with the method scipy chose: exact when min(n1, n2) <= 8 and there are no ties).

    python3 -m venv venv && venv/bin/pip install scipy==1.17.1
    venv/bin/python reference.py
"""

import json
import os

import numpy as np
import scipy
from scipy.stats import mannwhitneyu
from scipy.stats._mannwhitneyu import _mwu_choose_method

rng = np.random.default_rng(11)


def draw(n, centre, spread, decimals=6):
    return [round(float(v), decimals) for v in rng.normal(centre, spread, n)]


pairs = [
    # The case: n = 3 vs 6, U = 17 (exact p = 0.048, the approximation 0.053).
    ("3 vs 6, U = 17", [6.0, 10.0, 11.0], [1.0, 2.0, 3.0, 4.0, 5.0, 9.0]),
    ("5 vs 5, fully separated", [1.0, 2.0, 3.0, 4.0, 5.0], [6.0, 7.0, 8.0, 9.0, 10.0]),
    ("1 vs 1", [2.0], [1.0]),
    ("4 vs 4, interleaved", [1.0, 3.0, 5.0, 7.0], [2.0, 4.0, 6.0, 8.0]),
    ("8 vs 8, shifted", draw(8, 1.0, 1.0), draw(8, 0.0, 1.0)),
    # Both sides of the switch-over: one sample of 8 is still exact, 9 and 9 is not.
    ("8 vs 30, shifted (exact: one side <= 8)", draw(8, 0.8, 1.0), draw(30, 0.0, 1.0)),
    ("9 vs 9, shifted (asymptotic)", draw(9, 1.0, 1.0), draw(9, 0.0, 1.0)),
    ("9 vs 8 (exact)", draw(9, 0.0, 1.0), draw(8, 0.5, 1.0)),
    ("2 vs 40 (exact)", draw(2, 2.0, 1.0), draw(40, 0.0, 1.0)),
    # Ties: asymptotic with tie correction, whatever the sizes.
    ("5 vs 6 with ties", [1.0, 2.0, 2.0, 3.0, 5.0], [2.0, 3.0, 3.0, 4.0, 6.0, 7.0]),
    ("4 vs 4, all equal", [1.0, 1.0, 1.0, 1.0], [1.0, 1.0, 1.0, 1.0]),
    ("20 vs 20, rounded (ties)", draw(20, 10.0, 1.0, 0), draw(20, 10.5, 1.0, 0)),
    ("30 vs 30, no ties", draw(30, 100.0, 10.0), draw(30, 95.0, 10.0)),
    ("50 vs 40, zeros and a few errors (ties)",
     [0.0] * 44 + [1.0, 2.0, 1.0, 3.0, 1.0, 4.0], [0.0] * 37 + [1.0, 1.0, 2.0]),
]

cases = []
for name, x, y in pairs:
    ties = len(set(x + y)) < len(x) + len(y)
    auto = mannwhitneyu(x, y, alternative="two-sided", method="auto")
    asym = mannwhitneyu(x, y, alternative="two-sided", method="asymptotic", use_continuity=True)
    case = {
        "name": name,
        "x": x,
        "y": y,
        "ties": ties,
        "u": float(auto.statistic),
        "auto_method": _mwu_choose_method(len(x), len(y), ties),
        "p_auto": float(auto.pvalue),
        "p_asymptotic": float(asym.pvalue),
    }
    if not ties:
        case["p_exact"] = float(mannwhitneyu(x, y, alternative="two-sided", method="exact").pvalue)
    cases.append(case)

out = {
    "scipy": scipy.__version__,
    "numpy": np.__version__,
    "call": "scipy.stats.mannwhitneyu(x, y, alternative='two-sided', method=M, use_continuity=True)",
    "cases": cases,
}
path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "reference.json")
with open(path, "w") as f:
    json.dump(out, f, indent=1)
    f.write("\n")
for c in cases:
    print(f"{c['name']:45} U={c['u']:7.1f} {c['auto_method']:10} auto={c['p_auto']:.6g} "
          f"exact={c.get('p_exact', float('nan')):.6g} asym={c['p_asymptotic']:.6g}")
