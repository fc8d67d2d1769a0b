// A 16 x 16 tile of floats transposed in AVX-512 registers, shared by the sparse linear and convolution
// kernels (their 16-image blocks). Only with AVX-512.
#pragma once

#if defined(__AVX512F__)
#include <immintrin.h>

namespace st::cpu {

// GCC 12's headers implement some of these intrinsics with a deliberately undefined register (its content
// is discarded), which -Wuninitialized reports: silenced here alone.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
// On return row j holds column j of the input rows.
inline void transpose16(__m512 (&row)[16]) {
  __m512 t[16];
#pragma GCC unroll 8
  for (int i = 0; i < 16; i += 2) {  // pairs of rows interleaved by 32 bits within each 128-bit lane
    t[i] = _mm512_unpacklo_ps(row[i], row[i + 1]);
    t[i + 1] = _mm512_unpackhi_ps(row[i], row[i + 1]);
  }
#pragma GCC unroll 4
  for (int g = 0; g < 4; ++g) {  // quads of rows by 64 bits: row[4g + m] holds column m + 4 L in lane L
    const __m512d a = _mm512_castps_pd(t[4 * g]), b = _mm512_castps_pd(t[4 * g + 1]);
    const __m512d c = _mm512_castps_pd(t[4 * g + 2]), d = _mm512_castps_pd(t[4 * g + 3]);
    row[4 * g] = _mm512_castpd_ps(_mm512_unpacklo_pd(a, c));
    row[4 * g + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(a, c));
    row[4 * g + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(b, d));
    row[4 * g + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(b, d));
  }
#pragma GCC unroll 4
  for (int m = 0; m < 4; ++m) {  // 128-bit lanes across the four quads
    const __m512 v = _mm512_shuffle_f32x4(row[m], row[4 + m], 0x44), w = _mm512_shuffle_f32x4(row[m], row[4 + m], 0xEE);
    const __m512 x = _mm512_shuffle_f32x4(row[8 + m], row[12 + m], 0x44);
    const __m512 y = _mm512_shuffle_f32x4(row[8 + m], row[12 + m], 0xEE);
    t[m] = _mm512_shuffle_f32x4(v, x, 0x88);
    t[m + 4] = _mm512_shuffle_f32x4(v, x, 0xDD);
    t[m + 8] = _mm512_shuffle_f32x4(w, y, 0x88);
    t[m + 12] = _mm512_shuffle_f32x4(w, y, 0xDD);
  }
#pragma GCC unroll 16
  for (int i = 0; i < 16; ++i) row[i] = t[i];
}
#pragma GCC diagnostic pop

}  // namespace st::cpu
#endif
