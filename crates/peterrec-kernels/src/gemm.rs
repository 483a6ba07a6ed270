//! Matrix products on host buffers through the `gemm` crate (the one Flex uses, with its
//! AVX-512 microkernels).
//!
//! A [`MatRef`] is a strided view into a slice and a [`MatMut`] a row-strided one into a mutable
//! slice; both check when built that every element they address lies in the slice, so
//! [`product`] and [`new_product`] are safe to call.

use gemm::Parallelism;

/// Products below this many multiply-adds run on one thread (as Flex decides).
const PARALLEL_THRESHOLD: usize = 192 * 192 * 192;

/// The threading of a `[m, k]·[k, n]` product.
fn parallelism(m: usize, n: usize, k: usize) -> Parallelism {
    if m.saturating_mul(n).saturating_mul(k) >= PARALLEL_THRESHOLD {
        Parallelism::Rayon(rayon::current_num_threads())
    } else {
        Parallelism::None
    }
}

/// The largest offset a `[rows, cols]` view with these strides addresses, or `None` when it
/// addresses nothing (a dimension is 0).
fn last_offset(rows: usize, cols: usize, row_stride: usize, col_stride: usize) -> Option<usize> {
    if rows == 0 || cols == 0 {
        return None;
    }
    let last = (rows - 1)
        .checked_mul(row_stride)
        .and_then(|r| {
            (cols - 1)
                .checked_mul(col_stride)
                .and_then(|c| r.checked_add(c))
        })
        .expect("view offsets fit in usize");
    Some(last)
}

/// A read-only `[rows, cols]` matrix view: element `(i, j)` at `i·row_stride + j·col_stride`
/// of its slice.
#[derive(Clone, Copy, Debug)]
pub struct MatRef<'a> {
    data: &'a [f32],
    rows: usize,
    cols: usize,
    row_stride: usize,
    col_stride: usize,
}

impl<'a> MatRef<'a> {
    /// A `[rows, cols]` view with the given strides.
    ///
    /// # Panics
    /// If an element the view addresses lies outside `data`.
    pub fn new(
        data: &'a [f32],
        rows: usize,
        cols: usize,
        row_stride: usize,
        col_stride: usize,
    ) -> Self {
        if let Some(last) = last_offset(rows, cols, row_stride, col_stride) {
            assert!(last < data.len(), "the view lies inside its slice");
        }
        Self {
            data,
            rows,
            cols,
            row_stride,
            col_stride,
        }
    }

    /// The row-major `[rows, cols]` matrix at the start of `data`.
    pub fn rows(data: &'a [f32], rows: usize, cols: usize) -> Self {
        Self::new(data, rows, cols, cols, 1)
    }

    /// The transpose (`[cols, rows]`) of the row-major `[rows, cols]` matrix at the start of
    /// `data`.
    pub fn transposed(data: &'a [f32], rows: usize, cols: usize) -> Self {
        Self::new(data, cols, rows, 1, cols)
    }

    /// The same values seen transposed.
    pub fn t(self) -> Self {
        Self {
            rows: self.cols,
            cols: self.rows,
            row_stride: self.col_stride,
            col_stride: self.row_stride,
            ..self
        }
    }

    /// Rows of the view.
    pub fn num_rows(&self) -> usize {
        self.rows
    }

    /// Columns of the view.
    pub fn num_cols(&self) -> usize {
        self.cols
    }
}

/// A writable `[rows, cols]` matrix view with contiguous rows: element `(i, j)` at
/// `i·row_stride + j` of its slice.
#[derive(Debug)]
pub struct MatMut<'a> {
    data: &'a mut [f32],
    rows: usize,
    cols: usize,
    row_stride: usize,
}

impl<'a> MatMut<'a> {
    /// A `[rows, cols]` view whose rows start `row_stride` values apart.
    ///
    /// # Panics
    /// If an element the view addresses lies outside `data`.
    pub fn new(data: &'a mut [f32], rows: usize, cols: usize, row_stride: usize) -> Self {
        if let Some(last) = last_offset(rows, cols, row_stride, 1) {
            assert!(last < data.len(), "the view lies inside its slice");
        }
        Self {
            data,
            rows,
            cols,
            row_stride,
        }
    }

    /// The row-major `[rows, cols]` matrix at the start of `data`.
    pub fn rows(data: &'a mut [f32], rows: usize, cols: usize) -> Self {
        Self::new(data, rows, cols, cols)
    }
}

/// `dst ← (accumulate ? dst : 0) + lhs·rhs` for `dst: [m, n]`, `lhs: [m, k]`, `rhs: [k, n]`.
///
/// # Panics
/// If the views' shapes do not chain so.
pub fn product(dst: MatMut<'_>, lhs: MatRef<'_>, rhs: MatRef<'_>, accumulate: bool) {
    let (m, n, k) = (dst.rows, dst.cols, lhs.cols);
    assert_eq!(lhs.rows, m, "lhs has dst's rows");
    assert_eq!(rhs.rows, k, "rhs has as many rows as lhs has columns");
    assert_eq!(rhs.cols, n, "rhs has dst's columns");
    // SAFETY: each view was checked on construction to address only elements of its slice
    // (nothing when a dimension is 0), and the shapes chain as `gemm` expects (checked above).
    // `dst` is a unique borrow, so it overlaps neither `lhs` nor `rhs`.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.data.as_mut_ptr(),
            1,
            dst.row_stride as isize,
            accumulate,
            lhs.data.as_ptr(),
            lhs.col_stride as isize,
            lhs.row_stride as isize,
            rhs.data.as_ptr(),
            rhs.col_stride as isize,
            rhs.row_stride as isize,
            1.0,
            1.0,
            false,
            false,
            false,
            parallelism(m, n, k),
        );
    }
}

/// `lhs·rhs` in a new row-major `[m, n]` buffer (zeros when `m`, `n` or `k` is 0: `gemm` is not
/// called then).
///
/// # Panics
/// If `lhs` has not as many columns as `rhs` has rows.
pub fn new_product(lhs: MatRef<'_>, rhs: MatRef<'_>) -> Vec<f32> {
    let (m, n, k) = (lhs.rows, rhs.cols, lhs.cols);
    assert_eq!(rhs.rows, k, "rhs has as many rows as lhs has columns");
    let mut dst = vec![0.0f32; m * n];
    if m > 0 && n > 0 && k > 0 {
        product(MatMut::rows(&mut dst, m, n), lhs, rhs, false);
    }
    dst
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The products against a naive triple loop, for a transposed operand, a strided
    /// destination and accumulation.
    #[test]
    fn products_match_a_naive_loop() {
        let (m, n, k) = (3, 4, 5);
        let a: Vec<f32> = (0..m * k).map(|i| i as f32 * 0.5 - 3.0).collect();
        let b: Vec<f32> = (0..k * n).map(|i| (i % 7) as f32 - 2.0).collect();
        let naive = |i: usize, j: usize| (0..k).map(|l| a[i * k + l] * b[l * n + j]).sum::<f32>();
        let c = new_product(MatRef::rows(&a, m, k), MatRef::rows(&b, k, n));
        for i in 0..m {
            for j in 0..n {
                assert_eq!(c[i * n + j], naive(i, j));
            }
        }
        // Bᵀ·Aᵀ = (A·B)ᵀ, from the same buffers.
        let ct = new_product(MatRef::transposed(&b, k, n), MatRef::transposed(&a, m, k));
        for i in 0..m {
            for j in 0..n {
                assert_eq!(ct[j * m + i], naive(i, j));
            }
        }
        // Into columns 1.. of rows of width n + 1, twice, accumulating.
        let mut wide = vec![1.0f32; m * (n + 1)];
        for accumulate in [false, true] {
            product(
                MatMut::new(&mut wide[1..], m, n, n + 1),
                MatRef::rows(&a, m, k),
                MatRef::rows(&b, k, n),
                accumulate,
            );
        }
        for i in 0..m {
            assert_eq!(wide[i * (n + 1)], 1.0);
            for j in 0..n {
                assert_eq!(wide[i * (n + 1) + 1 + j], 2.0 * naive(i, j));
            }
        }
        assert_eq!(
            new_product(MatRef::rows(&[], 0, 3), MatRef::rows(&b, 3, 2)),
            []
        );
    }

    #[test]
    #[should_panic(expected = "inside its slice")]
    fn a_view_past_its_slice_is_refused() {
        let _ = MatRef::rows(&[0.0; 5], 2, 3);
    }
}
