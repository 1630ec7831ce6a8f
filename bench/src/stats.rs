//! Order statistics and a paired comparison.

use serde_json::{json, Value};

#[derive(Clone, Copy, Debug, Default)]
pub struct Summary {
    pub n: usize,
    pub min: f64,
    pub median: f64,
    pub p95: f64,
    pub max: f64,
    pub mean: f64,
}

fn sorted(v: &[f64]) -> Vec<f64> {
    let mut s: Vec<f64> = v.iter().copied().filter(|x| x.is_finite()).collect();
    s.sort_by(|a, b| a.partial_cmp(b).unwrap());
    s
}

/// Median of a sorted slice (mean of the middle two for an even count).
fn median_sorted(s: &[f64]) -> f64 {
    let n = s.len();
    if n == 0 {
        return f64::NAN;
    }
    if n % 2 == 1 {
        s[n / 2]
    } else {
        (s[n / 2 - 1] + s[n / 2]) / 2.0
    }
}

pub fn summarize(v: &[f64]) -> Summary {
    let s = sorted(v);
    let n = s.len();
    if n == 0 {
        return Summary {
            n: 0,
            min: f64::NAN,
            median: f64::NAN,
            p95: f64::NAN,
            max: f64::NAN,
            mean: f64::NAN,
        };
    }
    // p95 by nearest rank.
    let rank = ((0.95 * n as f64).ceil() as usize).clamp(1, n);
    Summary {
        n,
        min: s[0],
        median: median_sorted(&s),
        p95: s[rank - 1],
        max: s[n - 1],
        mean: s.iter().sum::<f64>() / n as f64,
    }
}

impl Summary {
    pub fn json(&self) -> Value {
        let r = |x: f64| {
            if x.is_finite() {
                json!((x * 1000.0).round() / 1000.0)
            } else {
                Value::Null
            }
        };
        json!({ "n": self.n, "min": r(self.min), "median": r(self.median), "p95": r(self.p95),
                "max": r(self.max), "mean": r(self.mean) })
    }
}

/// Paired comparison of two series measured in the same rounds: the median
/// of the per-round ratios a[i]/b[i] and a 95% bootstrap interval of that
/// median (deterministic resampling, so reruns on the same data agree).
pub struct Paired {
    pub n: usize,
    pub median_ratio: f64,
    pub lo: f64,
    pub hi: f64,
}

pub fn paired(a: &[f64], b: &[f64]) -> Paired {
    let ratios: Vec<f64> = a
        .iter()
        .zip(b)
        .filter(|(_, y)| **y > 0.0)
        .map(|(x, y)| x / y)
        .collect();
    let s = sorted(&ratios);
    let n = s.len();
    if n == 0 {
        return Paired {
            n: 0,
            median_ratio: f64::NAN,
            lo: f64::NAN,
            hi: f64::NAN,
        };
    }
    let mut rng: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    let mut meds = Vec::with_capacity(2000);
    let mut buf = vec![0.0; n];
    for _ in 0..2000 {
        for x in buf.iter_mut() {
            *x = s[(next() % n as u64) as usize];
        }
        buf.sort_by(|a, b| a.partial_cmp(b).unwrap());
        meds.push(median_sorted(&buf));
    }
    meds.sort_by(|a, b| a.partial_cmp(b).unwrap());
    Paired {
        n,
        median_ratio: median_sorted(&s),
        lo: meds[49],
        hi: meds[1949],
    }
}

/// The order of `n` participants in round `round`: the rows of a Williams
/// design, so that over every `n` rounds (2n for an odd n) each participant
/// runs right after each other one equally often. A plain rotation
/// (A B C, B C A, …) keeps the cyclic order, so each would always follow
/// the same one; what a command leaves behind for the next (here: cgroup v1
/// attach is cheap right after another attach, dear after a pause) would
/// then fall on one participant only.
pub fn order(n: usize, round: usize) -> Vec<usize> {
    if n <= 1 {
        return (0..n).collect();
    }
    let mut first = vec![0usize];
    let (mut lo, mut hi) = (1usize, n - 1);
    let mut take_lo = true;
    while first.len() < n {
        if take_lo {
            first.push(lo);
            lo += 1;
        } else {
            first.push(hi);
            hi -= 1;
        }
        take_lo = !take_lo;
    }
    let rows = if n.is_multiple_of(2) { n } else { 2 * n };
    let r = round % rows;
    let mut row: Vec<usize> = first.iter().map(|x| (x + r % n) % n).collect();
    if r >= n {
        row.reverse();
    }
    row
}

#[cfg(test)]
mod tests {
    use super::order;

    #[test]
    fn williams_rows_balance_who_follows_whom() {
        for n in 2usize..=7 {
            let rows = if n.is_multiple_of(2) { n } else { 2 * n };
            let mut seen = vec![vec![0u32; n]; n];
            for r in 0..rows {
                let o = order(n, r);
                let mut sorted = o.clone();
                sorted.sort();
                assert_eq!(sorted, (0..n).collect::<Vec<_>>());
                for w in o.windows(2) {
                    seen[w[0]][w[1]] += 1;
                }
            }
            let want = if n.is_multiple_of(2) { 1 } else { 2 };
            for (a, row) in seen.iter().enumerate() {
                for (b, &c) in row.iter().enumerate() {
                    assert_eq!(c, if a == b { 0 } else { want }, "n={n} {a}->{b}");
                }
            }
        }
    }
}
