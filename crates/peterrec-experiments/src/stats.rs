//! Summary statistics of repeated runs (one value per seed).

/// Arithmetic mean; 0 for no values.
pub fn mean(v: &[f64]) -> f64 {
    if v.is_empty() {
        0.0
    } else {
        v.iter().sum::<f64>() / v.len() as f64
    }
}

/// Sample standard deviation (divisor `n - 1`); 0 for fewer than two values, where it is not
/// defined (a table of one seed shows no spread).
pub fn sd(v: &[f64]) -> f64 {
    if v.len() < 2 {
        return 0.0;
    }
    let m = mean(v);
    (v.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (v.len() - 1) as f64).sqrt()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-12
    }

    #[test]
    fn mean_of_values() {
        assert!(close(mean(&[1.0, 2.0, 3.0, 4.0]), 2.5));
        assert!(close(mean(&[-1.0, 1.0, 6.0]), 2.0));
        assert!(close(mean(&[0.25]), 0.25));
    }

    #[test]
    fn mean_of_nothing_is_zero() {
        assert_eq!(mean(&[]), 0.0);
    }

    #[test]
    fn sd_divides_by_n_minus_one() {
        // Squared deviations from 2.5: 2.25 + 0.25 + 0.25 + 2.25 = 5, over 3.
        assert!(close(sd(&[1.0, 2.0, 3.0, 4.0]), (5.0f64 / 3.0).sqrt()));
        // Population sd 2 (squares sum to 32 over 8 values); the sample sd is sqrt(32 / 7).
        let v = [2.0, 4.0, 4.0, 4.0, 5.0, 5.0, 7.0, 9.0];
        assert!(close(sd(&v), (32.0f64 / 7.0).sqrt()));
        assert!(close(sd(&[3.0, 3.0, 3.0]), 0.0));
    }

    #[test]
    fn sd_of_fewer_than_two_values_is_zero() {
        assert_eq!(sd(&[]), 0.0);
        assert_eq!(sd(&[42.0]), 0.0);
    }
}
