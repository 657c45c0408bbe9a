//! The coordinator's plan: how many users of each class every worker runs.
//!
//! Users are split across classes by weight (largest remainder, so counts add up exactly),
//! then dealt to workers round-robin, continuing from class to class, so every worker's total
//! differs from another's by at most one and each class is spread evenly.

/// Users of each class for `total` users, proportional to `weights`.
pub fn users_per_class(weights: &[i64], total: u32) -> Vec<u32> {
    let sum: i64 = weights.iter().map(|w| (*w).max(0)).sum();
    if sum == 0 || weights.is_empty() {
        return vec![0; weights.len()];
    }
    let exact: Vec<f64> = weights
        .iter()
        .map(|w| (*w).max(0) as f64 * total as f64 / sum as f64)
        .collect();
    let mut counts: Vec<u32> = exact.iter().map(|e| e.floor() as u32).collect();
    let mut left = total - counts.iter().sum::<u32>();
    let mut order: Vec<usize> = (0..weights.len()).collect();
    // Largest remainder first; ties go to the earlier class.
    order.sort_by(|&a, &b| {
        let ra = exact[a] - exact[a].floor();
        let rb = exact[b] - exact[b].floor();
        rb.partial_cmp(&ra)
            .unwrap_or(std::cmp::Ordering::Equal)
            .then(a.cmp(&b))
    });
    for i in order {
        if left == 0 {
            break;
        }
        counts[i] += 1;
        left -= 1;
    }
    counts
}

/// Deals per-class counts to `workers` workers: result[w][class].
pub fn split(per_class: &[u32], workers: usize) -> Vec<Vec<u32>> {
    let mut out = vec![vec![0u32; per_class.len()]; workers];
    if workers == 0 {
        return out;
    }
    let mut cursor = 0usize;
    for (class, &n) in per_class.iter().enumerate() {
        let base = n / workers as u32;
        let extra = (n % workers as u32) as usize;
        for w in out.iter_mut() {
            w[class] = base;
        }
        for i in 0..extra {
            out[(cursor + i) % workers][class] += 1;
        }
        cursor = (cursor + extra) % workers;
    }
    out
}

/// Each worker's share of the spawn rate.
pub fn split_rate(rate: f64, workers: usize) -> f64 {
    if workers == 0 {
        0.0
    } else {
        rate / workers as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn weights_split_like_locust() {
        assert_eq!(users_per_class(&[1, 3], 8), vec![2, 6]);
        assert_eq!(users_per_class(&[1, 1, 1], 10), vec![4, 3, 3]);
        assert_eq!(users_per_class(&[5], 7), vec![7]);
    }

    #[test]
    fn deals_evenly() {
        assert_eq!(split(&[5], 4), vec![vec![2], vec![1], vec![1], vec![1]]);
        assert_eq!(split(&[1, 1, 1], 2), vec![vec![1, 0, 1], vec![0, 1, 0]]);
    }

    proptest! {
        #[test]
        fn totals_are_exact_and_balanced(weights in proptest::collection::vec(1i64..20, 1..6), total in 0u32..5000, workers in 1usize..40) {
            let per_class = users_per_class(&weights, total);
            prop_assert_eq!(per_class.iter().sum::<u32>(), total);
            let plan = split(&per_class, workers);
            for class in 0..weights.len() {
                prop_assert_eq!(plan.iter().map(|w| w[class]).sum::<u32>(), per_class[class]);
            }
            let totals: Vec<u32> = plan.iter().map(|w| w.iter().sum()).collect();
            let (min, max) = (totals.iter().min().unwrap(), totals.iter().max().unwrap());
            prop_assert!(max - min <= 1, "{:?}", totals);
        }
    }
}
