//! Classification metrics: accuracy, macro-F1, confusion counts and the majority-class
//! baseline. Functions return `None` on empty input instead of NaN.

use burn::tensor::{backend::Backend, Tensor};
use serde::{Deserialize, Serialize};

/// Fraction of positions where `pred` equals `truth`; `None` when empty.
///
/// # Panics
///
/// If the two slices have different lengths.
pub fn accuracy(truth: &[usize], pred: &[usize]) -> Option<f64> {
    assert_eq!(
        truth.len(),
        pred.len(),
        "truth and prediction lengths differ"
    );
    if truth.is_empty() {
        return None;
    }
    let correct = truth.iter().zip(pred).filter(|(t, p)| t == p).count();
    Some(correct as f64 / truth.len() as f64)
}

/// Macro-averaged F1 over classes; `None` when empty.
///
/// Per class, F1 = 2·TP / (2·TP + FP + FN). A class that appears in the truth or in the
/// predictions but is never correct scores 0. **Classes absent from both the truth and the
/// predictions are skipped** (they would be 0/0), so the average is over the classes that
/// occur.
///
/// # Panics
///
/// If the two slices have different lengths.
pub fn macro_f1(truth: &[usize], pred: &[usize]) -> Option<f64> {
    ConfusionMatrix::from_labels(truth, pred).macro_f1()
}

/// Counts of (true class, predicted class) pairs.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfusionMatrix {
    /// `counts[t][p]`: how many examples of true class `t` were predicted as `p`.
    counts: Vec<Vec<u64>>,
}

impl ConfusionMatrix {
    /// An all-zero `n_classes × n_classes` matrix.
    pub fn new(n_classes: usize) -> Self {
        Self {
            counts: vec![vec![0; n_classes]; n_classes],
        }
    }

    /// Counts the pairs of `truth` and `pred`; the size is `max label + 1`.
    ///
    /// # Panics
    ///
    /// If the two slices have different lengths.
    pub fn from_labels(truth: &[usize], pred: &[usize]) -> Self {
        assert_eq!(
            truth.len(),
            pred.len(),
            "truth and prediction lengths differ"
        );
        let n = truth.iter().chain(pred).max().map_or(0, |&m| m + 1);
        let mut cm = Self::new(n);
        for (&t, &p) in truth.iter().zip(pred) {
            cm.add(t, p);
        }
        cm
    }

    fn grow(&mut self, n: usize) {
        if n > self.counts.len() {
            for row in &mut self.counts {
                row.resize(n, 0);
            }
            self.counts.resize(n, vec![0; n]);
        }
    }

    /// Adds one example, growing the matrix if a label is new.
    pub fn add(&mut self, truth: usize, pred: usize) {
        self.grow(truth.max(pred) + 1);
        self.counts[truth][pred] += 1;
    }

    /// Number of classes (rows).
    pub fn n_classes(&self) -> usize {
        self.counts.len()
    }

    /// Count of examples of class `truth` predicted as `pred` (0 outside the matrix).
    pub fn get(&self, truth: usize, pred: usize) -> u64 {
        self.counts
            .get(truth)
            .and_then(|r| r.get(pred))
            .copied()
            .unwrap_or(0)
    }

    /// The rows `counts[truth][pred]`.
    pub fn rows(&self) -> &[Vec<u64>] {
        &self.counts
    }

    /// Total number of examples.
    pub fn total(&self) -> u64 {
        self.counts.iter().flatten().sum()
    }

    /// Number of correct predictions (the diagonal).
    pub fn correct(&self) -> u64 {
        (0..self.n_classes()).map(|c| self.counts[c][c]).sum()
    }

    /// Accuracy; `None` when empty.
    pub fn accuracy(&self) -> Option<f64> {
        let total = self.total();
        (total > 0).then(|| self.correct() as f64 / total as f64)
    }

    /// F1 of each class, `None` for a class absent from both truth and predictions.
    pub fn per_class_f1(&self) -> Vec<Option<f64>> {
        (0..self.n_classes())
            .map(|c| {
                let tp = self.counts[c][c];
                let support: u64 = self.counts[c].iter().sum();
                let predicted: u64 = self.counts.iter().map(|r| r[c]).sum();
                let fn_ = support - tp;
                let fp = predicted - tp;
                let denom = 2 * tp + fp + fn_;
                (denom > 0).then(|| 2.0 * tp as f64 / denom as f64)
            })
            .collect()
    }

    /// Macro-F1 over the classes that occur (see [`macro_f1`]); `None` when empty.
    pub fn macro_f1(&self) -> Option<f64> {
        let f1s: Vec<f64> = self.per_class_f1().into_iter().flatten().collect();
        (!f1s.is_empty()).then(|| f1s.iter().sum::<f64>() / f1s.len() as f64)
    }
}

/// The most frequent label (the smallest one on ties); `None` when empty.
pub fn majority_class(labels: &[usize]) -> Option<usize> {
    let max = *labels.iter().max()?;
    let mut counts = vec![0usize; max + 1];
    for &l in labels {
        counts[l] += 1;
    }
    // `max_by_key` keeps the last maximum; iterate in reverse to keep the smallest label.
    counts
        .iter()
        .enumerate()
        .rev()
        .max_by_key(|&(_, c)| *c)
        .map(|(l, _)| l)
}

/// Accuracy of always predicting the majority class **of the training labels** on the test
/// labels. `None` when either is empty.
pub fn majority_baseline_accuracy(train_labels: &[usize], test_labels: &[usize]) -> Option<f64> {
    let m = majority_class(train_labels)?;
    if test_labels.is_empty() {
        return None;
    }
    Some(test_labels.iter().filter(|&&l| l == m).count() as f64 / test_labels.len() as f64)
}

/// Accuracy and macro-F1 of a classifier with the majority-class baseline beside them.
/// `None` fields mean "no data", never NaN.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ClassificationReport {
    /// Number of test examples.
    pub count: usize,
    /// Test accuracy.
    pub accuracy: Option<f64>,
    /// Test macro-F1 (classes absent from truth and predictions skipped).
    pub macro_f1: Option<f64>,
    /// Majority class of the training labels.
    pub majority_class: Option<usize>,
    /// Accuracy of always predicting `majority_class` on the test labels.
    pub majority_accuracy: Option<f64>,
}

impl ClassificationReport {
    /// Computes the report from the training labels (for the baseline), the test truth and the
    /// test predictions.
    ///
    /// # Panics
    ///
    /// If `truth` and `pred` have different lengths.
    pub fn new(train_labels: &[usize], truth: &[usize], pred: &[usize]) -> Self {
        let cm = ConfusionMatrix::from_labels(truth, pred);
        Self {
            count: truth.len(),
            accuracy: cm.accuracy(),
            macro_f1: cm.macro_f1(),
            majority_class: majority_class(train_labels),
            majority_accuracy: majority_baseline_accuracy(train_labels, truth),
        }
    }
}

/// Index of the largest logit of each row of a `[batch, classes]` tensor (predicted classes).
pub fn argmax_rows<B: Backend>(logits: Tensor<B, 2>) -> Vec<usize> {
    let [batch, classes] = logits.dims();
    if batch == 0 || classes == 0 {
        return Vec::new();
    }
    logits
        .argmax(1)
        .into_data()
        .convert::<i64>()
        .to_vec::<i64>()
        .expect("argmax converts to i64")
        .into_iter()
        .map(|i| i as usize)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::NdArray;

    type B = NdArray<f32>;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-12
    }

    #[test]
    fn classification_hand_computed() {
        let truth = [0, 0, 1, 1, 2, 2];
        let pred = [0, 1, 1, 1, 0, 2];
        assert!(close(accuracy(&truth, &pred).unwrap(), 4.0 / 6.0));
        // class 0: tp1 fp1 fn1 → 0.5 ; class 1: tp2 fp1 fn0 → 0.8 ; class 2: tp1 fp0 fn1 → 2/3
        let f1 = macro_f1(&truth, &pred).unwrap();
        assert!(close(f1, (0.5 + 0.8 + 2.0 / 3.0) / 3.0));

        let cm = ConfusionMatrix::from_labels(&truth, &pred);
        assert_eq!(cm.get(2, 0), 1);
        assert_eq!(cm.get(0, 1), 1);
        assert_eq!(cm.get(9, 9), 0);
        assert_eq!(cm.total(), 6);
        assert_eq!(cm.correct(), 4);
    }

    #[test]
    fn macro_f1_skips_absent_classes() {
        // class 1 appears nowhere: skipped; class 3 only predicted: F1 0.
        let truth = [0, 0, 2];
        let pred = [0, 3, 2];
        // class 0: tp1 fn1 → 2/3 ; class 2: 1 ; class 3: fp1 → 0
        let f1 = macro_f1(&truth, &pred).unwrap();
        assert!(close(f1, (2.0 / 3.0 + 1.0 + 0.0) / 3.0));
        let per = ConfusionMatrix::from_labels(&truth, &pred).per_class_f1();
        assert_eq!(per[1], None);
    }

    #[test]
    fn classification_empty() {
        assert_eq!(accuracy(&[], &[]), None);
        assert_eq!(macro_f1(&[], &[]), None);
        assert_eq!(majority_class(&[]), None);
        assert_eq!(majority_baseline_accuracy(&[], &[1]), None);
        assert_eq!(majority_baseline_accuracy(&[1], &[]), None);
        let r = ClassificationReport::new(&[], &[], &[]);
        assert_eq!(r.count, 0);
        assert_eq!(
            serde_json::to_string(&r).unwrap(),
            r#"{"count":0,"accuracy":null,"macro_f1":null,"majority_class":null,"majority_accuracy":null}"#
        );
    }

    #[test]
    fn majority_baseline_uses_train_labels() {
        assert_eq!(majority_class(&[2, 1, 1, 2, 0]), Some(1)); // tie 1 vs 2 → smaller
                                                               // train majority is 1; test has two 1s of five
        assert_eq!(
            majority_baseline_accuracy(&[1, 1, 0], &[0, 0, 1, 1, 0]),
            Some(0.4)
        );
        let r = ClassificationReport::new(&[1, 1, 0], &[0, 1], &[1, 1]);
        assert_eq!(r.accuracy, Some(0.5));
        assert_eq!(r.majority_accuracy, Some(0.5));
        assert_eq!(r.majority_class, Some(1));
    }

    #[test]
    fn argmax_rows_works() {
        let device = Default::default();
        let t = Tensor::<B, 2>::from_data([[0.1, 0.7, 0.2], [3.0, -1.0, 2.0]], &device);
        assert_eq!(argmax_rows(t), vec![1, 0]);
        assert!(argmax_rows(Tensor::<B, 2>::zeros([0, 3], &device)).is_empty());
    }
}
