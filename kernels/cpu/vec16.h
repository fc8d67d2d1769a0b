// Sixteen floats in registers, the unit of the sparse kernels' 16-image blocks: one AVX-512 register, or
// a pair of AVX2 registers on CPUs without AVX-512 (AMD Zen 1-3, Intel client parts), so both instruction
// sets run the same kernels. kVec16Registers says how many Vec16 values fit in the register file (32
// zmm, or 16 ymm holding 8 pairs): kernels size their register tiles from it.
#pragma once

#if defined(__AVX512F__) || defined(__AVX2__)
#define ST_VEC16 1
#include <immintrin.h>

namespace st::cpu {

// GCC 12's headers implement some of these intrinsics with a deliberately undefined register (its content
// is discarded), which -Wuninitialized reports: silenced here alone.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

#if defined(__AVX512F__)
inline constexpr int kVec16Registers = 32;

struct Vec16 {
  __m512 v;
};
inline Vec16 vzero() { return {_mm512_setzero_ps()}; }
inline Vec16 vset1(float x) { return {_mm512_set1_ps(x)}; }
inline Vec16 vload(const float* p) { return {_mm512_loadu_ps(p)}; }
inline void vstore(float* p, Vec16 a) { _mm512_storeu_ps(p, a.v); }
inline Vec16 vadd(Vec16 a, Vec16 b) { return {_mm512_add_ps(a.v, b.v)}; }
inline Vec16 vmul(Vec16 a, Vec16 b) { return {_mm512_mul_ps(a.v, b.v)}; }
inline Vec16 vfmadd(Vec16 a, Vec16 b, Vec16 c) { return {_mm512_fmadd_ps(a.v, b.v, c.v)}; }
inline float vsum(Vec16 a) { return _mm512_reduce_add_ps(a.v); }
// The first `count` lanes of p (the others 0), and a store of the first `count` lanes.
inline Vec16 vload_first(const float* p, int64_t count) {
  return {_mm512_maskz_loadu_ps(static_cast<__mmask16>((1u << count) - 1u), p)};
}
inline void vstore_first(float* p, Vec16 a, int64_t count) {
  _mm512_mask_storeu_ps(p, static_cast<__mmask16>((1u << count) - 1u), a.v);
}

// On return row j holds column j of the input rows.
inline void transpose16(Vec16 (&row)[16]) {
  __m512 t[16];
#pragma GCC unroll 8
  for (int i = 0; i < 16; i += 2) {  // pairs of rows interleaved by 32 bits within each 128-bit lane
    t[i] = _mm512_unpacklo_ps(row[i].v, row[i + 1].v);
    t[i + 1] = _mm512_unpackhi_ps(row[i].v, row[i + 1].v);
  }
  __m512 q[16];
#pragma GCC unroll 4
  for (int g = 0; g < 4; ++g) {  // quads of rows by 64 bits: q[4g + m] holds column m + 4 L in lane L
    const __m512d a = _mm512_castps_pd(t[4 * g]), b = _mm512_castps_pd(t[4 * g + 1]);
    const __m512d c = _mm512_castps_pd(t[4 * g + 2]), d = _mm512_castps_pd(t[4 * g + 3]);
    q[4 * g] = _mm512_castpd_ps(_mm512_unpacklo_pd(a, c));
    q[4 * g + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(a, c));
    q[4 * g + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(b, d));
    q[4 * g + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(b, d));
  }
#pragma GCC unroll 4
  for (int m = 0; m < 4; ++m) {  // 128-bit lanes across the four quads
    const __m512 v = _mm512_shuffle_f32x4(q[m], q[4 + m], 0x44), w = _mm512_shuffle_f32x4(q[m], q[4 + m], 0xEE);
    const __m512 x = _mm512_shuffle_f32x4(q[8 + m], q[12 + m], 0x44);
    const __m512 y = _mm512_shuffle_f32x4(q[8 + m], q[12 + m], 0xEE);
    row[m].v = _mm512_shuffle_f32x4(v, x, 0x88);
    row[m + 4].v = _mm512_shuffle_f32x4(v, x, 0xDD);
    row[m + 8].v = _mm512_shuffle_f32x4(w, y, 0x88);
    row[m + 12].v = _mm512_shuffle_f32x4(w, y, 0xDD);
  }
}
#else
inline constexpr int kVec16Registers = 8;

struct Vec16 {
  __m256 lo, hi;
};
inline Vec16 vzero() { return {_mm256_setzero_ps(), _mm256_setzero_ps()}; }
inline Vec16 vset1(float x) {
  const __m256 v = _mm256_set1_ps(x);
  return {v, v};
}
inline Vec16 vload(const float* p) { return {_mm256_loadu_ps(p), _mm256_loadu_ps(p + 8)}; }
inline void vstore(float* p, Vec16 a) {
  _mm256_storeu_ps(p, a.lo);
  _mm256_storeu_ps(p + 8, a.hi);
}
inline Vec16 vadd(Vec16 a, Vec16 b) { return {_mm256_add_ps(a.lo, b.lo), _mm256_add_ps(a.hi, b.hi)}; }
inline Vec16 vmul(Vec16 a, Vec16 b) { return {_mm256_mul_ps(a.lo, b.lo), _mm256_mul_ps(a.hi, b.hi)}; }
inline Vec16 vfmadd(Vec16 a, Vec16 b, Vec16 c) {
  return {_mm256_fmadd_ps(a.lo, b.lo, c.lo), _mm256_fmadd_ps(a.hi, b.hi, c.hi)};
}
inline float vsum(Vec16 a) {
  const __m256 s = _mm256_add_ps(a.lo, a.hi);
  __m128 x = _mm_add_ps(_mm256_castps256_ps128(s), _mm256_extractf128_ps(s, 1));
  x = _mm_add_ps(x, _mm_movehl_ps(x, x));
  x = _mm_add_ss(x, _mm_movehdup_ps(x));
  return _mm_cvtss_f32(x);
}
// Lane masks for the first `count` of 8 lanes (AVX2's masked moves take a sign-bit vector).
inline __m256i first_lanes(int64_t count) {
  const __m256i index = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(count)), index);
}
inline Vec16 vload_first(const float* p, int64_t count) {
  const int64_t low = count < 8 ? count : 8, high = count > 8 ? count - 8 : 0;
  return {_mm256_maskload_ps(p, first_lanes(low)), _mm256_maskload_ps(p + 8, first_lanes(high))};
}
inline void vstore_first(float* p, Vec16 a, int64_t count) {
  const int64_t low = count < 8 ? count : 8, high = count > 8 ? count - 8 : 0;
  _mm256_maskstore_ps(p, first_lanes(low), a.lo);
  _mm256_maskstore_ps(p + 8, first_lanes(high), a.hi);
}

// An 8 x 8 transpose: on return r[j] holds column j of the input rows.
inline void transpose8(__m256 (&r)[8]) {
  __m256 t[8], q[8];
#pragma GCC unroll 4
  for (int i = 0; i < 8; i += 2) {
    t[i] = _mm256_unpacklo_ps(r[i], r[i + 1]);
    t[i + 1] = _mm256_unpackhi_ps(r[i], r[i + 1]);
  }
#pragma GCC unroll 2
  for (int g = 0; g < 2; ++g) {
    q[4 * g] = _mm256_shuffle_ps(t[4 * g], t[4 * g + 2], 0x44);
    q[4 * g + 1] = _mm256_shuffle_ps(t[4 * g], t[4 * g + 2], 0xEE);
    q[4 * g + 2] = _mm256_shuffle_ps(t[4 * g + 1], t[4 * g + 3], 0x44);
    q[4 * g + 3] = _mm256_shuffle_ps(t[4 * g + 1], t[4 * g + 3], 0xEE);
  }
#pragma GCC unroll 4
  for (int m = 0; m < 4; ++m) {
    r[m] = _mm256_permute2f128_ps(q[m], q[4 + m], 0x20);
    r[m + 4] = _mm256_permute2f128_ps(q[m], q[4 + m], 0x31);
  }
}

// On return row j holds column j of the input rows: four 8 x 8 transposes of the quarters.
inline void transpose16(Vec16 (&row)[16]) {
  __m256 a[8], b[8], c[8], d[8];  // quarters: rows 0-7 low, rows 8-15 low, rows 0-7 high, rows 8-15 high
#pragma GCC unroll 8
  for (int i = 0; i < 8; ++i) {
    a[i] = row[i].lo;
    b[i] = row[8 + i].lo;
    c[i] = row[i].hi;
    d[i] = row[8 + i].hi;
  }
  transpose8(a);
  transpose8(b);
  transpose8(c);
  transpose8(d);
#pragma GCC unroll 8
  for (int j = 0; j < 8; ++j) {
    row[j] = {a[j], b[j]};
    row[8 + j] = {c[j], d[j]};
  }
}
#endif

#pragma GCC diagnostic pop

}  // namespace st::cpu
#endif
