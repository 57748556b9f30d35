"""How sure a study verdict is: 95% confidence intervals over seeds, the smallest detectable effect.

Seeds are the unit: each run's final error is one observation (the validation images are
the same for every run, so images are not independent draws between runs).

- A variant against the baseline: Welch's t on the per-seed finals (unequal variances,
  Welch-Satterthwaite degrees of freedom). Not paired by seed, although a seed sets both the
  data order and the init of both arms: the two networks differ from the first step, their
  trajectories part within a few hundred updates, and nothing makes seed k's baseline and
  seed k's variant err together; pairing would spend half the degrees of freedom (1 instead
  of ~2 with 2 seeds a side) on a correlation that is not there.
- Ten crops against the centre crop: paired t on the per-seed differences, since both are
  the same weights evaluated twice (there the pairing is real).

The smallest detectable effect (MDE) at 80% power and alpha 0.05 (two-sided) is
(t_{0.975, df} + t_{0.80, df}) x SE, with the SE and df of the test above from the observed
seed spread. The SE is floored at the binomial standard error of the difference,
sqrt(sum p (1 - p) / n) (two seeds that happen to agree do not make a zero-width interval).
A side with one seed has no spread: no interval, no MDE ('needs >= 2 seeds a side').
"""
import math

from scipy import stats

CONFIDENCE = 0.95
POWER = 0.80
SMALL_EFFECT = 0.03  # an effect under ~3 points needs at least MIN_SEEDS seeds a side
MIN_SEEDS = 3

METHOD = (
    "95% confidence intervals with seeds as the unit: Welch's t on the per-seed final errors "
    "(variant vs baseline; not paired by seed: the arms' trajectories part from the first "
    "steps, so a shared seed does not make their errors move together), paired t on the "
    "per-seed differences for ten crops vs the centre crop (the same weights). Smallest "
    "detectable effect (MDE, 80% power, alpha 0.05 two-sided): (t_0.975,df + t_0.80,df) x SE "
    "with the test's SE and df from the observed seed spread, the SE floored at the binomial "
    "standard error sqrt(sum p (1 - p) / n). Verdict: 'holds' when the interval excludes 0 on "
    "the paper's side, 'reversed' on the other side, 'within noise' when it contains 0, then "
    "with the largest effect in the paper's direction the interval rules out. An effect under "
    f"{100 * SMALL_EFFECT:.0f} points measured with fewer than {MIN_SEEDS} seeds a side is "
    f"flagged 'needs >= {MIN_SEEDS} seeds'.")


def _variance(values):
    mean = sum(values) / len(values)
    return sum((v - mean) ** 2 for v in values) / (len(values) - 1)


def _interval(difference, se, df, expected_sign):
    t_alpha, t_power = (float(stats.t.ppf(q, df)) for q in (0.5 + CONFIDENCE / 2, POWER))
    half = t_alpha * se
    low, high = difference - half, difference + half
    if low > 0 or high < 0:
        verdict = "holds" if difference * expected_sign > 0 else "reversed"
    else:
        verdict = "within noise"
    return {"ci": [low, high], "se": se, "df": df,
            "mde": (t_alpha + t_power) * se,
            "verdict": verdict,
            # The largest effect in the paper's direction still inside the interval: any
            # larger one is ruled out at 95%.
            "ruled_out_beyond": high if expected_sign > 0 else -low}


def welch(baseline, variant, expected_sign=1, binomial_se=0.0):
    """Welch's t interval of mean(variant) - mean(baseline), the MDE and the verdict (no interval
    with fewer than 2 values a side). binomial_se: the floor of the SE."""
    nb, nv = len(baseline), len(variant)
    difference = sum(variant) / nv - sum(baseline) / nb
    result = {"difference": difference, "test": "welch", "n": [nb, nv],
              "needs_more_seeds": abs(difference) < SMALL_EFFECT and min(nb, nv) < MIN_SEEDS}
    if min(nb, nv) < 2:
        return dict(result, ci=None, mde=None, verdict="needs >= 2 seeds a side")
    vb, vv = _variance(baseline) / nb, _variance(variant) / nv
    if vb + vv > 0:
        df = (vb + vv) ** 2 / (vb ** 2 / (nb - 1) + vv ** 2 / (nv - 1))
    else:
        df = nb + nv - 2
    se = max(math.sqrt(vb + vv), binomial_se)
    return dict(result, **_interval(difference, se, df, expected_sign))


def paired(first, second, expected_sign=1, binomial_se=0.0):
    """Paired t interval of mean(second - first) over the pairs (first[i] with second[i]), the
    MDE and the verdict (no interval with fewer than 2 pairs)."""
    differences = [b - a for a, b in zip(first, second)]
    n = len(differences)
    difference = sum(differences) / n
    result = {"difference": difference, "test": "paired", "n": [n, n],
              "needs_more_seeds": abs(difference) < SMALL_EFFECT and n < MIN_SEEDS}
    if n < 2:
        return dict(result, ci=None, mde=None, verdict="needs >= 2 paired seeds")
    se = max(math.sqrt(_variance(differences) / n), binomial_se)
    return dict(result, **_interval(difference, se, n - 1, expected_sign))


def binomial_se(rates_and_counts):
    """The standard error of a sum/difference of independent error rates: [(p, n), ...]."""
    return math.sqrt(sum(p * (1 - p) / n for p, n in rates_and_counts))


def describe(c, paper_delta=None):
    """'+2.82 [95% CI -15.1, +20.7], MDE 24.9: **within noise**: an effect of ...' (points)."""
    if c is None:
        return "-"
    text = f"{100 * c['difference']:+.2f}"
    if c.get("ci") is None:
        text += f": **{c['verdict']}**"
    else:
        low, high = c["ci"]
        text += (f" [95% CI {100 * low:+.1f}, {100 * high:+.1f}; MDE {100 * c['mde']:.1f}]: "
                 f"**{c['verdict']}**")
        if c["verdict"] == "within noise":
            bound = 100 * c["ruled_out_beyond"]
            text += f": an effect of {bound:.1f} points or more is ruled out"
            if paper_delta is not None:
                text += (f", the paper's {paper_delta:+g} is "
                         + ("ruled out" if paper_delta > bound else "not"))
    if c.get("needs_more_seeds"):
        text += f" (needs >= {MIN_SEEDS} seeds)"
    return text
