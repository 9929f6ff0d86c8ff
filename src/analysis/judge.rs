//! The second judge: a canary's samples of each metric against the baseline's, as Kayenta does.
//!
//! Each metric is compared with a two-sided Mann-Whitney U test: the exact distribution of U for
//! small samples without ties, else the normal approximation with tie and continuity
//! corrections, switching over as scipy's `mannwhitneyu(method="auto")` does (`choose_method`). A metric is `high` (or `low`) only when the difference
//! is significant (p < alpha) *and* the Hodges–Lehmann estimate of the canary's shift (the median
//! of every canary-minus-baseline difference) points that way *and* is larger than the allowed
//! effect, relative to the baseline's median; the direction that hurts is configured per metric.
//! Ranks and the shift agree by construction, so one outlier cannot make a canary that is lower
//! almost everywhere "higher". Passing metrics score their group; groups are weighted; the score
//! (0-100) is compared with the marginal and pass thresholds.
//!
//! Where Kayenta users lost canaries: a baseline of all zeros makes the ratio of means infinite
//! (or NaN). Here a baseline whose median is 0 is compared by the absolute shift against
//! `allowed_absolute`, and a metric with no samples on either side is an explicit outcome
//! (`on_missing`).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// Only an increase hurts (errors, latency).
    #[default]
    Increase,
    /// Only a decrease hurts (throughput, orders).
    Decrease,
    Either,
}

/// What a metric with no samples (on either side) means. Whatever it says, a judge where no
/// metric has data never passes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum OnMissing {
    /// The metric is scored as failed (and, if `critical`, fails the judge).
    Fail,
    /// The metric is left out of the score; the verdict is the score's.
    Ignore,
    /// The metric is left out of the score, and the verdict is at best marginal.
    #[default]
    Inconclusive,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricJudge {
    pub name: String,
    #[serde(default)]
    pub canary: Vec<f64>,
    #[serde(default)]
    pub baseline: Vec<f64>,
    #[serde(default)]
    pub direction: Direction,
    /// Allowed shift of the canary relative to the baseline's median (0.1 = 10%).
    #[serde(default = "default_allowed")]
    pub allowed: f64,
    /// With a baseline whose median is 0: the allowed absolute shift.
    #[serde(default)]
    pub allowed_absolute: f64,
    #[serde(default = "default_group")]
    pub group: String,
    /// A critical metric that fails fails the whole judge, whatever the score.
    #[serde(default)]
    pub critical: bool,
    #[serde(default)]
    pub on_missing: OnMissing,
}

pub fn default_allowed() -> f64 {
    0.1
}

pub fn default_group() -> String {
    "default".into()
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JudgeSpec {
    pub metrics: Vec<MetricJudge>,
    /// Group weights; a group not listed weighs 1 when none are listed.
    #[serde(default)]
    pub groups: BTreeMap<String, f64>,
    #[serde(default = "default_pass")]
    pub pass: f64,
    #[serde(default = "default_marginal")]
    pub marginal: f64,
    #[serde(default = "default_alpha")]
    pub alpha: f64,
}

fn default_pass() -> f64 {
    95.0
}
fn default_marginal() -> f64 {
    75.0
}
fn default_alpha() -> f64 {
    0.05
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MetricResult {
    Pass,
    High,
    Low,
    NoData,
}

#[derive(Debug, Clone, Serialize)]
pub struct MetricOutcome {
    pub name: String,
    pub group: String,
    pub result: MetricResult,
    /// Whether the metric counts as passing in its group.
    pub passed: bool,
    pub p_value: Option<f64>,
    /// How the p-value was computed (exact or asymptotic, as scipy's `auto` chooses).
    pub method: Option<Method>,
    /// The canary relative to the baseline: 1 + shift / |baseline median| (1.5: 50% higher), or
    /// the shift itself where the baseline's median is 0.
    pub effect: Option<f64>,
    /// The Hodges–Lehmann estimate of the canary's shift over the baseline.
    pub shift: Option<f64>,
    pub canary_mean: Option<f64>,
    pub baseline_mean: Option<f64>,
    pub baseline_median: Option<f64>,
    pub reason: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct JudgeOutcome {
    pub score: f64,
    /// pass, marginal or fail.
    pub verdict: String,
    pub reason: String,
    pub metrics: Vec<MetricOutcome>,
}

/// How a Mann-Whitney p-value is computed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Method {
    /// The exact distribution of U (it assumes no ties).
    Exact,
    /// The normal approximation, with tie and continuity corrections.
    Asymptotic,
}

/// Above this many cells (n1·n2) the exact distribution is not built: its table would take
/// memory for no gain, the two agree closely there.
const EXACT_MAX_CELLS: usize = 10_000_000;

/// scipy's `method="auto"` (scipy/stats/_mannwhitneyu.py, `_mwu_choose_method`): the normal
/// approximation when both samples are larger than 8 or there is any tie; otherwise exact.
pub fn choose_method(n1: usize, n2: usize, ties: bool) -> Method {
    if (n1 > 8 && n2 > 8) || ties || n1 * n2 > EXACT_MAX_CELLS {
        Method::Asymptotic
    } else {
        Method::Exact
    }
}

/// The Mann-Whitney U statistic of `a` against `b` and its two-sided p-value, by the method
/// scipy's `method="auto"` would choose.
pub fn mann_whitney(a: &[f64], b: &[f64]) -> (f64, f64) {
    let (u, p, _) = mann_whitney_by(a, b, None);
    (u, p)
}

/// The U statistic of `a`, its two-sided p-value, and the method used (`None`: as scipy's
/// `auto`).
pub fn mann_whitney_by(a: &[f64], b: &[f64], method: Option<Method>) -> (f64, f64, Method) {
    let (n1, n2) = (a.len() as f64, b.len() as f64);
    let mut all: Vec<(f64, usize)> = a
        .iter()
        .map(|&x| (x, 0))
        .chain(b.iter().map(|&x| (x, 1)))
        .collect();
    all.sort_by(|x, y| x.0.total_cmp(&y.0));
    let n = all.len();
    let mut ranks = vec![0.0; n];
    let mut tie_term = 0.0;
    let mut i = 0;
    while i < n {
        let mut j = i;
        while j + 1 < n && all[j + 1].0 == all[i].0 {
            j += 1;
        }
        let rank = (i + j) as f64 / 2.0 + 1.0;
        for r in ranks.iter_mut().take(j + 1).skip(i) {
            *r = rank;
        }
        let t = (j - i + 1) as f64;
        tie_term += t * t * t - t;
        i = j + 1;
    }
    let r1: f64 = all
        .iter()
        .zip(&ranks)
        .filter(|((_, g), _)| *g == 0)
        .map(|(_, r)| r)
        .sum();
    let u1 = r1 - n1 * (n1 + 1.0) / 2.0;
    let method = method.unwrap_or_else(|| choose_method(a.len(), b.len(), tie_term > 0.0));
    // Two-sided: twice the upper tail of the larger of U1 and U2.
    let u = u1.max(n1 * n2 - u1);
    if method == Method::Exact {
        let p = 2.0 * exact_upper_tail(a.len(), b.len(), u as usize);
        return (u1, p.clamp(0.0, 1.0), method);
    }
    let mean = n1 * n2 / 2.0;
    let nn = n1 + n2;
    let var = n1 * n2 / 12.0 * ((nn + 1.0) - tie_term / (nn * (nn - 1.0)));
    if var <= 0.0 {
        // Every sample is the same value: no difference at all.
        return (u1, 1.0, method);
    }
    let z = (u - mean - 0.5) / var.sqrt();
    let p = libm::erfc(z / std::f64::consts::SQRT_2);
    (u1, p.clamp(0.0, 1.0), method)
}

/// P(U >= u) under the null hypothesis for samples of `n1` and `n2` without ties. The counts of
/// arrangements by U are the coefficients of the Gaussian binomial [n1+n2 choose m]_q
/// = prod_{i=1..m} (1 - q^(n+i)) / (1 - q^i), m = min(n1, n2), n = max; built one factor at a
/// time, each step is again a polynomial with non-negative coefficients.
fn exact_upper_tail(n1: usize, n2: usize, u: usize) -> f64 {
    let (m, n) = (n1.min(n2), n1.max(n2));
    let cells = m * n;
    if u > cells {
        return 0.0;
    }
    let mut c = vec![0.0f64; cells + 1];
    c[0] = 1.0;
    for i in 1..=m {
        let up = n + i;
        for k in (up..=cells).rev() {
            c[k] -= c[k - up];
        }
        for k in i..=cells {
            c[k] += c[k - i];
        }
    }
    let total: f64 = c.iter().sum();
    // The distribution is symmetric: P(U >= u) = P(U <= cells - u), summed from the small end.
    let tail: f64 = c[..=cells - u].iter().sum();
    tail / total
}

fn mean(x: &[f64]) -> f64 {
    x.iter().sum::<f64>() / x.len() as f64
}

/// The median of sorted, non-empty samples.
fn median(sorted: &[f64]) -> f64 {
    let n = sorted.len();
    if n % 2 == 1 {
        sorted[n / 2]
    } else {
        (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0
    }
}

/// The `k`-th smallest (1-based) of the n1·n2 differences `a[i] - b[j]` of two sorted samples,
/// without building them: bisect on the value, counting the differences at or below it.
fn kth_difference(a: &[f64], b: &[f64], k: usize) -> f64 {
    let at_or_below = |d: f64| -> usize {
        // For a growing a[i], the b[j] with a[i] - b[j] <= d start further right.
        let mut j = 0;
        let mut count = 0;
        for &x in a {
            while j < b.len() && x - b[j] > d {
                j += 1;
            }
            count += b.len() - j;
        }
        count
    };
    let (mut lo, mut hi) = (a[0] - b[b.len() - 1], a[a.len() - 1] - b[0]);
    if at_or_below(lo) >= k {
        return lo;
    }
    // at_or_below(lo) < k <= at_or_below(hi): narrow until they are neighbouring floats, when
    // hi is the difference itself.
    // From ±f64::MAX down to a subnormal is under 2100 halvings.
    for _ in 0..2200 {
        let mid = lo + (hi - lo) / 2.0;
        if mid <= lo || mid >= hi {
            break;
        }
        if at_or_below(mid) >= k {
            hi = mid;
        } else {
            lo = mid;
        }
    }
    hi
}

/// The Hodges–Lehmann estimate of the shift of `a` over `b`: the median of every difference
/// `a[i] - b[j]`. Unlike a difference of means, one outlier cannot move it far, and it points
/// the way the ranks of the Mann-Whitney test do.
pub fn hodges_lehmann(a: &[f64], b: &[f64]) -> f64 {
    let mut a = a.to_vec();
    let mut b = b.to_vec();
    a.sort_by(f64::total_cmp);
    b.sort_by(f64::total_cmp);
    let n = a.len() * b.len();
    if n % 2 == 1 {
        kth_difference(&a, &b, n / 2 + 1)
    } else {
        (kth_difference(&a, &b, n / 2) + kth_difference(&a, &b, n / 2 + 1)) / 2.0
    }
}

/// Judge one metric.
pub fn judge_metric(m: &MetricJudge, alpha: f64) -> MetricOutcome {
    let canary: Vec<f64> = m.canary.iter().copied().filter(|x| x.is_finite()).collect();
    let baseline: Vec<f64> = m
        .baseline
        .iter()
        .copied()
        .filter(|x| x.is_finite())
        .collect();
    let base = MetricOutcome {
        name: m.name.clone(),
        group: m.group.clone(),
        result: MetricResult::NoData,
        passed: false,
        p_value: None,
        method: None,
        effect: None,
        shift: None,
        canary_mean: None,
        baseline_mean: None,
        baseline_median: None,
        reason: String::new(),
    };
    if canary.is_empty() || baseline.is_empty() {
        let side = match (canary.is_empty(), baseline.is_empty()) {
            (true, true) => "neither the canary nor the baseline has",
            (true, false) => "the canary has",
            _ => "the baseline has",
        };
        return MetricOutcome {
            passed: m.on_missing == OnMissing::Ignore,
            reason: format!(
                "no data: {side} no samples (on_missing: {})",
                match m.on_missing {
                    OnMissing::Fail => "fail",
                    OnMissing::Ignore => "ignore",
                    OnMissing::Inconclusive => "inconclusive",
                }
            ),
            ..base
        };
    }
    let (cm, bm) = (mean(&canary), mean(&baseline));
    let (_, p, method) = mann_whitney_by(&canary, &baseline, None);
    let shift = hodges_lehmann(&canary, &baseline);
    let mut sorted = baseline.clone();
    sorted.sort_by(f64::total_cmp);
    let bmed = median(&sorted);
    // The shift is weighed against the baseline's median; where that is 0 a ratio means
    // nothing, and the shift is weighed as it is, against `allowed_absolute`.
    let absolute = bmed == 0.0;
    let (effect, too_high, too_low) = if absolute {
        (
            shift,
            shift > m.allowed_absolute,
            shift < -m.allowed_absolute,
        )
    } else {
        // A negative median flips the meaning of a ratio: the shift over its size.
        let rel = shift / bmed.abs();
        (1.0 + rel, rel > m.allowed, rel < -m.allowed)
    };
    let significant = p < alpha;
    let hurt_high = matches!(m.direction, Direction::Increase | Direction::Either);
    let hurt_low = matches!(m.direction, Direction::Decrease | Direction::Either);
    let how = if absolute {
        format!(
            "{}: compared by the shift {shift:+.4} (allowed ±{})",
            if sorted.iter().all(|x| *x == 0.0) {
                "baseline all zeros"
            } else {
                "baseline median 0"
            },
            m.allowed_absolute
        )
    } else {
        format!(
            "shift {shift:+.4} on a baseline median of {bmed:.4}: {:+.1}% (allowed ±{:.0}%)",
            (effect - 1.0) * 100.0,
            m.allowed * 100.0
        )
    };
    // High (or low) only when the ranks say the samples differ *and* the shift points that
    // way *and* it is beyond the allowed effect: a few outliers cannot turn a better canary
    // into a worse one.
    let (result, passed) = if significant && too_high {
        (MetricResult::High, !hurt_high)
    } else if significant && too_low {
        (MetricResult::Low, !hurt_low)
    } else {
        (MetricResult::Pass, true)
    };
    let reason = match result {
        MetricResult::Pass if !significant => {
            format!("no significant difference (p={p:.3}); {how}")
        }
        MetricResult::Pass => format!("difference within the allowed effect (p={p:.3}); {how}"),
        MetricResult::High | MetricResult::Low => format!(
            "canary {} (p={p:.3}); {how}{}",
            if result == MetricResult::High {
                "higher"
            } else {
                "lower"
            },
            if passed {
                ", a direction that does not hurt"
            } else {
                ""
            }
        ),
        MetricResult::NoData => unreachable!("samples are present"),
    };
    MetricOutcome {
        result,
        passed,
        p_value: Some(p),
        method: Some(method),
        effect: Some(effect),
        shift: Some(shift),
        canary_mean: Some(cm),
        baseline_mean: Some(bm),
        baseline_median: Some(bmed),
        reason,
        ..base
    }
}

/// Judge every metric and score the groups.
pub fn judge(spec: &JudgeSpec) -> Result<JudgeOutcome, String> {
    if spec.metrics.is_empty() {
        return Err("the judge needs at least one metric".into());
    }
    if !(0.0..=100.0).contains(&spec.marginal)
        || !(0.0..=100.0).contains(&spec.pass)
        || spec.marginal > spec.pass
    {
        return Err(format!(
            "thresholds must satisfy 0 <= marginal <= pass <= 100 (marginal {}, pass {})",
            spec.marginal, spec.pass
        ));
    }
    if !(spec.alpha > 0.0 && spec.alpha < 1.0) {
        return Err(format!("alpha must be between 0 and 1, not {}", spec.alpha));
    }
    for m in &spec.metrics {
        if !spec.groups.is_empty() && !spec.groups.contains_key(&m.group) {
            return Err(format!(
                "metric `{}` is in group `{}`, which has no weight in `groups`",
                m.name, m.group
            ));
        }
        if m.allowed < 0.0 || m.allowed_absolute < 0.0 {
            return Err(format!(
                "metric `{}`: allowed effects cannot be negative",
                m.name
            ));
        }
    }
    let metrics: Vec<MetricOutcome> = spec
        .metrics
        .iter()
        .map(|m| judge_metric(m, spec.alpha))
        .collect();
    // As Kayenta: a metric without data is left out of the score, unless the team said that
    // missing data is a failure (`on_missing: fail`).
    let scored = |m: &MetricJudge, o: &MetricOutcome| {
        o.result != MetricResult::NoData || m.on_missing == OnMissing::Fail
    };
    // Per group: the share of its scored metrics that passed.
    let mut groups: BTreeMap<&str, (f64, f64)> = BTreeMap::new();
    for (m, o) in spec.metrics.iter().zip(&metrics) {
        if !scored(m, o) {
            continue;
        }
        let g = groups.entry(m.group.as_str()).or_default();
        g.1 += 1.0;
        if o.passed {
            g.0 += 1.0;
        }
    }
    let (mut score, mut weights) = (0.0, 0.0);
    for (name, (passed, total)) in &groups {
        let w = spec.groups.get(*name).copied().unwrap_or(1.0);
        score += w * passed / total;
        weights += w;
    }
    let critical = spec
        .metrics
        .iter()
        .zip(&metrics)
        .find(|(m, o)| m.critical && scored(m, o) && !o.passed);
    // A failed critical metric makes the score 0, as in Kayenta.
    let score = if weights > 0.0 && critical.is_none() {
        score / weights * 100.0
    } else {
        0.0
    };
    let missing =
        spec.metrics.iter().zip(&metrics).find(|(m, o)| {
            o.result == MetricResult::NoData && m.on_missing == OnMissing::Inconclusive
        });
    let failed: Vec<&str> = spec
        .metrics
        .iter()
        .zip(&metrics)
        .filter(|(m, o)| scored(m, o) && !o.passed)
        .map(|(_, o)| o.name.as_str())
        .collect();
    let (verdict, reason) = if let Some((m, o)) = critical {
        (
            "fail",
            format!("critical metric `{}` failed: {}", m.name, o.reason),
        )
    } else if groups.is_empty() {
        (
            "fail",
            "no metric had data to score (no data is never a pass)".to_string(),
        )
    } else if score < spec.marginal {
        (
            "fail",
            format!(
                "score {score:.1} below marginal {}; failing: {}",
                spec.marginal,
                failed.join(", ")
            ),
        )
    } else if let Some((m, _)) = missing {
        (
            "marginal",
            format!(
                "score {score:.1}, but `{}` has no data (on_missing: inconclusive: at best marginal)",
                m.name
            ),
        )
    } else if score < spec.pass {
        (
            "marginal",
            format!(
                "score {score:.1} between marginal {} and pass {}; failing: {}",
                spec.marginal,
                spec.pass,
                failed.join(", ")
            ),
        )
    } else {
        (
            "pass",
            format!("score {score:.1} at or above pass {}", spec.pass),
        )
    };
    Ok(JudgeOutcome {
        score,
        verdict: verdict.into(),
        reason,
        metrics,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn metric(name: &str, canary: Vec<f64>, baseline: Vec<f64>) -> MetricJudge {
        MetricJudge {
            name: name.into(),
            canary,
            baseline,
            direction: Direction::Increase,
            allowed: 0.1,
            allowed_absolute: 0.0,
            group: "default".into(),
            critical: false,
            on_missing: OnMissing::Inconclusive,
        }
    }

    fn spec(metrics: Vec<MetricJudge>) -> JudgeSpec {
        JudgeSpec {
            metrics,
            groups: BTreeMap::new(),
            pass: 95.0,
            marginal: 75.0,
            alpha: 0.05,
        }
    }

    /// Deterministic pseudo-random samples around `centre`.
    fn samples(centre: f64, spread: f64, n: usize, seed: u64) -> Vec<f64> {
        let mut rng = fastrand::Rng::with_seed(seed);
        (0..n)
            .map(|_| centre + (rng.f64() - 0.5) * spread)
            .collect()
    }

    #[test]
    fn mann_whitney_matches_known_values() {
        // Fully separated samples of 5 and 5: U = 0 (or 25), exact p = 0.0079; the normal
        // approximation with continuity correction gives about 0.012.
        let (a, b) = ([1.0, 2.0, 3.0, 4.0, 5.0], [6.0, 7.0, 8.0, 9.0, 10.0]);
        let (u, p) = mann_whitney(&a, &b);
        assert_eq!(u, 0.0);
        assert!((p - 0.0079).abs() < 0.0001, "p = {p}");
        let (_, p, m) = mann_whitney_by(&a, &b, Some(Method::Asymptotic));
        assert_eq!(m, Method::Asymptotic);
        assert!((p - 0.0122).abs() < 0.001, "p = {p}");
        // Identical samples: no difference.
        let (_, p) = mann_whitney(&[1.0; 10], &[1.0; 10]);
        assert_eq!(p, 1.0);
        // Interleaved samples: clearly not significant.
        let (_, p) = mann_whitney(&[1.0, 3.0, 5.0, 7.0], &[2.0, 4.0, 6.0, 8.0]);
        assert!(p > 0.5, "p = {p}");
    }

    #[test]
    fn same_distribution_passes_and_a_worse_canary_fails() {
        let good = judge(&spec(vec![metric(
            "latency",
            samples(100.0, 20.0, 30, 1),
            samples(100.0, 20.0, 30, 2),
        )]))
        .unwrap();
        assert_eq!(good.verdict, "pass", "{good:?}");
        assert_eq!(good.metrics[0].result, MetricResult::Pass);
        let bad = judge(&spec(vec![metric(
            "latency",
            samples(300.0, 20.0, 30, 3),
            samples(100.0, 20.0, 30, 4),
        )]))
        .unwrap();
        assert_eq!(bad.verdict, "fail", "{bad:?}");
        assert_eq!(bad.metrics[0].result, MetricResult::High);
        assert!(bad.metrics[0].p_value.unwrap() < 0.001);
        assert!((bad.metrics[0].effect.unwrap() - 3.0).abs() < 0.2);
    }

    #[test]
    fn a_significant_but_small_effect_passes() {
        // 5% higher, clearly significant with tight samples, but within the allowed 10%.
        let r = judge(&spec(vec![metric(
            "latency",
            samples(105.0, 1.0, 40, 5),
            samples(100.0, 1.0, 40, 6),
        )]))
        .unwrap();
        assert!(r.metrics[0].p_value.unwrap() < 0.001);
        assert_eq!(r.metrics[0].result, MetricResult::Pass, "{r:?}");
        assert_eq!(r.verdict, "pass");
    }

    #[test]
    fn direction_decides_what_hurts() {
        let mut m = metric(
            "orders",
            samples(50.0, 5.0, 30, 7),
            samples(100.0, 5.0, 30, 8),
        );
        // Lower orders with direction increase: does not hurt.
        let r = judge(&spec(vec![m.clone()])).unwrap();
        assert_eq!(r.metrics[0].result, MetricResult::Low);
        assert_eq!(r.verdict, "pass");
        m.direction = Direction::Decrease;
        assert_eq!(judge(&spec(vec![m.clone()])).unwrap().verdict, "fail");
        m.direction = Direction::Either;
        assert_eq!(judge(&spec(vec![m])).unwrap().verdict, "fail");
    }

    #[test]
    fn zero_baselines_are_compared_by_absolute_difference() {
        // Baseline had no errors at all; the canary has some: a ratio would be infinite.
        let mut m = metric("errors", samples(0.2, 0.1, 30, 9), vec![0.0; 30]);
        let r = judge(&spec(vec![m.clone()])).unwrap();
        assert_eq!(r.metrics[0].result, MetricResult::High, "{r:?}");
        assert!(r.metrics[0].effect.unwrap().is_finite());
        assert!(r.metrics[0].reason.contains("baseline all zeros"));
        assert_eq!(r.verdict, "fail");
        // Allowed absolute difference above it: passes.
        m.allowed_absolute = 0.5;
        assert_eq!(judge(&spec(vec![m])).unwrap().verdict, "pass");
        // Both all zeros: no difference, a pass (not NaN).
        let r = judge(&spec(vec![metric("errors", vec![0.0; 10], vec![0.0; 10])])).unwrap();
        assert_eq!(r.verdict, "pass");
        assert_eq!(r.metrics[0].p_value, Some(1.0));
    }

    #[test]
    fn missing_samples_are_explicit() {
        let ok = metric(
            "latency",
            samples(100.0, 10.0, 20, 10),
            samples(100.0, 10.0, 20, 11),
        );
        let mut missing = metric("errors", vec![], samples(1.0, 0.1, 20, 12));
        // Default: the judge cannot pass.
        let r = judge(&spec(vec![ok.clone(), missing.clone()])).unwrap();
        assert_eq!(r.metrics[1].result, MetricResult::NoData);
        // Out of the score, but the judge cannot pass.
        assert_eq!((r.score, r.verdict.as_str()), (100.0, "marginal"), "{r:?}");
        missing.on_missing = OnMissing::Ignore;
        let r = judge(&spec(vec![ok.clone(), missing.clone()])).unwrap();
        assert_eq!(r.verdict, "pass", "{r:?}");
        missing.on_missing = OnMissing::Inconclusive;
        missing.group = "errors".into();
        let mut s = spec(vec![ok, missing]);
        s.groups = [("default".to_string(), 1.0), ("errors".to_string(), 0.0)].into();
        // The missing metric weighs nothing, yet the judge is only marginal.
        let r = judge(&s).unwrap();
        assert_eq!(r.verdict, "marginal", "{r:?}");
        // NaN samples are dropped, never compared.
        let r = judge(&spec(vec![metric("x", vec![f64::NAN; 5], vec![1.0; 5])])).unwrap();
        assert_eq!(r.metrics[0].result, MetricResult::NoData);
    }

    #[test]
    fn groups_weigh_the_score_and_critical_metrics_fail_alone() {
        let good = |n: &str, g: &str, seed| {
            let mut m = metric(
                n,
                samples(10.0, 1.0, 30, seed),
                samples(10.0, 1.0, 30, seed + 100),
            );
            m.group = g.into();
            m
        };
        let mut bad = metric(
            "p99",
            samples(30.0, 1.0, 30, 20),
            samples(10.0, 1.0, 30, 21),
        );
        bad.group = "latency".into();
        let mut s = spec(vec![
            good("errors", "errors", 30),
            good("p50", "latency", 31),
            bad.clone(),
        ]);
        s.groups = [("errors".to_string(), 80.0), ("latency".to_string(), 20.0)].into();
        // errors 80 * 1 + latency 20 * 0.5 = 90: marginal.
        let r = judge(&s).unwrap();
        assert!((r.score - 90.0).abs() < 1e-9, "{r:?}");
        assert_eq!(r.verdict, "marginal");
        bad.critical = true;
        s.metrics[2] = bad;
        let r = judge(&s).unwrap();
        assert_eq!(r.verdict, "fail");
        assert!(r.reason.contains("critical"));
        // A group without a weight is a configuration error.
        s.groups.remove("latency");
        assert!(judge(&s).unwrap_err().contains("no weight"));
    }

    #[test]
    fn a_canary_lower_almost_everywhere_is_not_failed_by_one_outlier() {
        // Lower in 19 of 20 points; one huge outlier drags its mean far above the baseline's.
        let baseline = samples(100.0, 10.0, 20, 40);
        let mut canary = samples(70.0, 10.0, 20, 41);
        canary[7] = 1_000_000.0;
        let mut m = metric("latency", canary, baseline);
        let r = judge(&spec(vec![m.clone()])).unwrap();
        let o = &r.metrics[0];
        assert!(o.p_value.unwrap() < 0.05, "{o:?}");
        assert!(o.canary_mean.unwrap() > o.baseline_mean.unwrap(), "{o:?}");
        assert_eq!(o.result, MetricResult::Low, "{o:?}");
        assert!(o.reason.contains("canary lower"), "{}", o.reason);
        assert_eq!(r.verdict, "pass", "{r:?}");
        // The same samples where a decrease hurts (orders): a regression.
        m.direction = Direction::Decrease;
        assert_eq!(judge(&spec(vec![m])).unwrap().verdict, "fail");
    }

    #[test]
    fn a_baseline_is_called_all_zeros_only_when_it_is() {
        // Mean 0, median 0, yet not one zero in it.
        let baseline: Vec<f64> = (0..20)
            .map(|i| if i % 2 == 0 { -1.0 } else { 1.0 })
            .collect();
        let r = judge(&spec(vec![metric("delta", vec![3.0; 20], baseline)])).unwrap();
        let reason = &r.metrics[0].reason;
        assert!(!reason.contains("all zeros"), "{reason}");
        assert!(reason.contains("baseline median 0"), "{reason}");
        let r = judge(&spec(vec![metric("errors", vec![3.0; 20], vec![0.0; 20])])).unwrap();
        assert!(r.metrics[0].reason.contains("baseline all zeros"), "{r:?}");
    }

    #[test]
    fn hodges_lehmann_is_the_median_of_the_pairwise_differences() {
        let naive = |a: &[f64], b: &[f64]| {
            let mut d: Vec<f64> = a
                .iter()
                .flat_map(|x| b.iter().map(move |y| x - y))
                .collect();
            d.sort_by(f64::total_cmp);
            median(&d)
        };
        let ties = [1.0, 2.0, 2.0, 2.0, 5.0];
        for (a, b) in [
            (samples(10.0, 4.0, 7, 50), samples(8.0, 4.0, 9, 51)),
            (samples(10.0, 4.0, 8, 52), samples(12.0, 4.0, 8, 53)),
            (vec![3.0], vec![1.0]),
            (ties.to_vec(), vec![2.0, 2.0, 3.0]),
            (vec![-5.0, 1e9, 0.5], vec![0.0, 0.0, 0.0, 0.25]),
        ] {
            assert_eq!(hodges_lehmann(&a, &b), naive(&a, &b), "{a:?} {b:?}");
        }
    }

    /// tests/data/mannwhitney/reference.json, written by reference.py beside it (scipy).
    fn reference() -> Vec<serde_json::Value> {
        let text = include_str!("../../tests/data/mannwhitney/reference.json");
        let v: serde_json::Value = serde_json::from_str(text).unwrap();
        v["cases"].as_array().unwrap().clone()
    }

    fn floats(v: &serde_json::Value) -> Vec<f64> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_f64().unwrap())
            .collect()
    }

    fn close(got: f64, want: f64) -> bool {
        (got - want).abs() <= 1e-9 + 1e-7 * want.abs()
    }

    #[test]
    fn small_samples_without_ties_use_the_exact_distribution() {
        // The case: 3 against 6, U = 17. Exact p = 0.0476; the normal approximation
        // (0.053) would miss this regression at alpha 0.05.
        let (u, p) = mann_whitney(&[6.0, 10.0, 11.0], &[1.0, 2.0, 3.0, 4.0, 5.0, 9.0]);
        assert_eq!(u, 17.0);
        assert!((p - 0.047619).abs() < 1e-6, "p = {p}");
        let r = judge(&spec(vec![metric(
            "latency",
            vec![6.0, 10.0, 11.0],
            vec![1.0, 2.0, 3.0, 4.0, 5.0, 9.0],
        )]))
        .unwrap();
        assert_eq!(r.metrics[0].method, Some(Method::Exact));
        assert_eq!(r.metrics[0].result, MetricResult::High, "{r:?}");
    }

    #[test]
    fn p_values_match_scipy_auto() {
        let cases = reference();
        assert!(cases.len() >= 10);
        for c in &cases {
            let (u, p) = mann_whitney(&floats(&c["x"]), &floats(&c["y"]));
            let want = c["p_auto"].as_f64().unwrap();
            assert_eq!(u, c["u"].as_f64().unwrap(), "{}", c["name"]);
            assert!(
                close(p, want),
                "{}: p {p}, scipy auto ({}) {want}",
                c["name"],
                c["auto_method"]
            );
        }
    }

    #[test]
    fn p_values_match_scipy_exact_and_asymptotic_and_the_switch_over_is_scipys() {
        let (mut exact, mut ties) = (0, 0);
        for c in &reference() {
            let (x, y) = (floats(&c["x"]), floats(&c["y"]));
            let has_ties = c["ties"].as_bool().unwrap();
            let (_, p, _) = mann_whitney_by(&x, &y, Some(Method::Asymptotic));
            let want = c["p_asymptotic"].as_f64().unwrap();
            assert!(
                close(p, want),
                "{}: asymptotic p {p}, scipy {want}",
                c["name"]
            );
            if let Some(want) = c.get("p_exact").and_then(|p| p.as_f64()) {
                let (_, p, _) = mann_whitney_by(&x, &y, Some(Method::Exact));
                assert!(close(p, want), "{}: exact p {p}, scipy {want}", c["name"]);
            }
            let (_, _, chosen) = mann_whitney_by(&x, &y, None);
            let scipy = match c["auto_method"].as_str().unwrap() {
                "exact" => Method::Exact,
                _ => Method::Asymptotic,
            };
            assert_eq!(chosen, scipy, "{}", c["name"]);
            exact += usize::from(chosen == Method::Exact);
            ties += usize::from(has_ties);
        }
        // Both sides of the switch-over, and ties, are in the reference.
        assert!(exact >= 4 && ties >= 3, "exact {exact}, ties {ties}");
        assert_eq!(choose_method(8, 1000, false), Method::Exact);
        assert_eq!(choose_method(9, 9, false), Method::Asymptotic);
        assert_eq!(choose_method(3, 3, true), Method::Asymptotic);
    }

    #[test]
    fn scoring_follows_kayenta() {
        let ok = |n: &str, seed| {
            metric(
                n,
                samples(100.0, 10.0, 20, seed),
                samples(100.0, 10.0, 20, seed + 1),
            )
        };
        let missing = |on_missing| {
            let mut m = metric("errors", vec![], samples(1.0, 0.1, 20, 60));
            m.on_missing = on_missing;
            m
        };
        // (on_missing, score, verdict): a metric without data is out of the score unless
        // on_missing says it failed; inconclusive caps the verdict at marginal.
        for (on_missing, score, verdict) in [
            (OnMissing::Inconclusive, 100.0, "marginal"),
            (OnMissing::Ignore, 100.0, "pass"),
            (OnMissing::Fail, 50.0, "fail"),
        ] {
            let r = judge(&spec(vec![ok("latency", 61), missing(on_missing)])).unwrap();
            assert_eq!(
                (r.score, r.verdict.as_str()),
                (score, verdict),
                "{on_missing:?}: {r:?}"
            );
        }
        // Every metric missing is never a pass, whatever on_missing says.
        for on_missing in [OnMissing::Inconclusive, OnMissing::Ignore, OnMissing::Fail] {
            let r = judge(&spec(vec![missing(on_missing)])).unwrap();
            assert_eq!(r.verdict, "fail", "{on_missing:?}: {r:?}");
            assert_eq!(r.score, 0.0, "{on_missing:?}: {r:?}");
        }
        // A failed critical metric makes the score 0, as in Kayenta.
        let mut bad = metric(
            "p99",
            samples(300.0, 10.0, 20, 62),
            samples(100.0, 10.0, 20, 63),
        );
        bad.critical = true;
        let r = judge(&spec(vec![ok("a", 64), ok("b", 66), ok("c", 68), bad])).unwrap();
        assert_eq!((r.score, r.verdict.as_str()), (0.0, "fail"), "{r:?}");
    }
}
