// Sparse compute forms of masked weights on the CPU (issue 17): the pattern of a mask as CSR by output
// row with its transpose (CSC), and the linear and convolution layers' three products computed over the
// pattern only.
//
// The dense weight and its mask stay the source of truth (checkpoints, export, scores); the pattern is
// rebuilt when the mask changes, and the values are gathered from the dense weight at each forward
// (O(nnz), against the O(nnz * batch) of the products), so the masked optimizer step needs no change.
//
// Layout of the products (after SparseProp's, Nikdan et al. 2023): activations are transposed so that
// images lie along the AVX-512 lanes (blocks of 16 images, [blocks][features][16]), every stored weight
// scales or dots one lane row per block, and no product touches a pruned weight.
//   forward   y[n, o]  = b[o] + sum_{k in row o} W[o, k] x[n, k]
//   data grad dx[n, k] += sum_{o in column k} W[o, k] dy[n, o]
//   weight    dW[o, k] += sum_n dy[n, o] x[n, k]  at the pattern's entries only (SDDMM); the other
//             entries of the dense dW are left as they are
// Linear: parallel over blocks of images, the weight and bias gradients summed per thread and added in
// thread order. Convolution: parallel over output rows (forward, weight gradient) or input columns (data
// gradient). Every output is summed in a fixed order, so results are bit-identical run to run (for a given
// thread count).
#pragma once

#include <cstdint>
#include <vector>

#include "kernels/cpu/kernels.h"

namespace st::cpu {

// Below this many multiply-adds (plus element copies) a sparse product runs on the calling thread: on
// small layers (lenet300 at 95% sparsity: a few hundred microseconds per step) the fork and barrier of
// a parallel region cost more than the second core saves (a region costs about 1 us on this project's
// 2-core VMs). The choice depends on the shapes and the thread count only, so a run stays bit-identical
// run to run (the weight and bias gradients' per-thread partial sums depend on the thread count, as the
// dense kernels' do).
constexpr int64_t kSparseSerialWork = int64_t{1} << 17;

struct SparsePattern {
  int64_t rows = 0, cols = 0;         // the weight [rows, cols] = [outputs, inputs]
  std::vector<int64_t> row_start;     // rows + 1: CSR row r holds entries row_start[r] .. row_start[r + 1]
  std::vector<int32_t> col_index;     // nnz: column of each CSR entry (increasing within a row)
  std::vector<int64_t> col_start;     // cols + 1: the CSC column c holds entries col_start[c] ..
  std::vector<int32_t> row_index;     // nnz: row of each CSC entry (increasing within a column)
  std::vector<int64_t> csr_position;  // nnz: the CSR index of each CSC entry
  int64_t nnz() const { return static_cast<int64_t>(col_index.size()); }
};

// The pattern of the non-zero entries of mask [rows, cols].
SparsePattern sparse_pattern(int64_t rows, int64_t cols, const float* mask);
// values[i] = w[r, c] for CSR entry i at (r, c).
void sparse_gather(const SparsePattern& pattern, const float* w, float* values);

// y[batch, rows] = x[batch, cols] W^T + b (b may be null); values in CSR order. When xt is given (room for
// sparse_linear_blocked_size(batch, cols) floats, best 64-byte aligned) it receives x in the products' blocked
// layout, for the backward to reuse.
void sparse_linear_forward(int64_t batch, const SparsePattern& pattern, const float* values, const float* x,
                           const float* b, float* y, float* xt = nullptr);
// dx += dy W, dW += dy^T x at the pattern's entries (dW dense [rows, cols]), db += column sums of dy;
// null outputs are skipped. xt: x in the blocked layout as the forward wrote it, or null (then it is built
// here).
void sparse_linear_backward(int64_t batch, const SparsePattern& pattern, const float* values, const float* x,
                            const float* dy, float* dx, float* dw, float* db, const float* xt = nullptr);

// Convolution (NHWC x KRSC, one group, any kernel size, stride and padding) with the pattern of the weight
// viewed as [K, R*S*C]; values in CSR order. Layout and order of the sums in sparse_conv.cpp.
//   forward   y[n, oh, ow, k] = b[k] + sum_{(r, s, c) in row k} W[k, r, s, c] x[n, oh*st + r - p, ow*st + s - p, c]
//   backward  dx (+)= the transposed convolution of dy, dW += its SDDMM at the pattern's entries, db += sums
void sparse_conv_forward(const Conv2dGeometry& g, const SparsePattern& pattern, const float* values, const float* x,
                         const float* b, float* y);
void sparse_conv_backward(const Conv2dGeometry& g, const SparsePattern& pattern, const float* values, const float* x,
                          const float* dy, GradOut dx, float* dw, float* db);

// Floats of the linear products' blocked layout of a [batch, features] activation.
int64_t sparse_linear_blocked_size(int64_t batch, int64_t features);


}  // namespace st::cpu
