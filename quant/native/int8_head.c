/* quant.native._int8_head: the whole integer softmax-regression head in one call per batch.
 *
 * uint8 pixels x (N, K) times int8 weight codes w (M, K) -> exact accumulators -> per-class
 * fixed-point requantization -> integer softmax -> uint8/uint16 probability codes (or the
 * index of the largest code), the same int64 operations as quant/integer/linear.py's torch
 * path (IntegerSoftmaxRegression.probabilities) and quant/native/_native.c's softmax_head:
 *   acc = sum_k x[k] * w[j, k]                  exact (see "Accumulators" below)
 *   z   = (acc * mult + off) >> shift           per class, arithmetic shift (floor)
 *   d   = min(max(z) - z, 255);  e = table[d];  s = sum(e)
 *   r   = (out_max << rbits) / s                (s > 0: the row max has d = 0)
 *   p   = (e * r + 2**(rbits-1)) >> rbits       stored as uint8 or uint16
 *
 * Accumulators. One of three instruction sequences, chosen in Python from
 * quant.accumulator_bound proofs over the weight codes' range and pixels in [0, 255]
 * (quant/native/int8_head.py) and checked again here when the weights are prepared:
 *   avx512_vnni  vpdpbusd: four u8*s8 products (each exact in 16 bits) added straight into an
 *                int32 lane, no intermediate saturation; needs the K-term int32 proof.
 *   avx2         pixels zero-extended to int16 (vpmovzxbw), int16 weights, vpmaddwd (a pair of
 *                int16 products summed in int32: |pair| <= 2 * 255 * 128, never clipped) and
 *                vpaddd into int32 lanes; needs the K-term int32 proof. (vpmaddubsw, which sums
 *                u8*s8 pairs in saturating int16, is never used: 2 * 255 * 127 > 32767.)
 *   scalar       plain C, int32 sums under the same proof, or int64 sums ("wide") when K is too
 *                long for int32 (the only path that exists beyond that proof).
 * Every lane of a SIMD accumulator, and every partial sum of the final horizontal reduction,
 * is a sum of a subset of the K products, so the K-term proof (which bounds every partial
 * sum in any order) covers them all: the int32 result is the exact accumulator.
 *
 * Signed int64 arithmetic after the accumulators wraps exactly as torch's int64 tensors do
 * (done in uint64; vpmullq/vpaddq wrap alike), though the prepare-time checks rule wrapping
 * out for s and p. The avx512_vnni path reduces each group of <= 16 classes with one
 * transposing add tree into a vector of sums and finishes 8 classes per int64 vector (the
 * exp table read by vpgatherqq); the
 * avx2 path reduces 8 classes per hadd tree and finishes in scalar code (AVX2 has neither
 * 64-bit multiplies nor 64-bit arithmetic shifts).
 * The x86 code is compiled per function (target attributes) and picked at run time with
 * __builtin_cpu_supports, so the module runs on any x86-64; other machines get scalar only.
 * Rows are split over `nthreads` OpenMP threads (torch's team, when quant/native/int8_head.py
 * finds the runtime shared).
 */
#define _GNU_SOURCE                     /* dladdr */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "numfmt/openmp_library.h"    /* openmp_library(); <omp.h> under OpenMP */
/* QUANT_INT8_HEAD_PORTABLE builds the scalar path alone, as on other architectures. */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(QUANT_INT8_HEAD_PORTABLE)
#include <immintrin.h>
#define HEAD_X86 1
#else
#define HEAD_X86 0
#endif

#define CAPSULE_NAME "quant.native._int8_head.head"
enum { ISA_SCALAR = 0, ISA_AVX2 = 1, ISA_AVX512_VNNI = 2, N_ISA = 3 };
static const char *const ISA_NAMES[N_ISA] = {"scalar", "avx2", "avx512_vnni"};
enum { MODE_PROBABILITIES = 0, MODE_ARGMAX = 1 };

#define AVX2_GROUP_MAX 12               /* accumulators per pass: 12 + x + weight <= 16 ymm */
#define VNNI_GROUP_MAX 16               /* one zmm of sums per group (reduce16) */
#define ROW_BLOCK 64                    /* rows per OpenMP work item */
#define STACK_CLASSES 64                /* per-row scratch on the stack up to this many */
#define FINISH_BLOCK 8                  /* rows whose finishes run side by side (vnni) */
/* int64s per thread: per row of a block, z (m + 8) and the vnni int32 sums (2 (m + 16)) */
#define SCRATCH_LEN(m) (FINISH_BLOCK * (2 * (m) + 40))

typedef struct {
    Py_ssize_t m, k;                    /* classes, features */
    int isa, wide;                      /* instruction sequence; int64 sums (scalar only) */
    int group_max;                      /* classes per register pass */
    Py_ssize_t chunk, nchunks;          /* k-elements per SIMD step, steps per row (padded) */
    void *w;                            /* weights in the isa's layout (see prepare_weights) */
    int64_t *mult, *off, *shift;
    int64_t table[256];
    int64_t num, half;
    int rbits, out_item;
    int narrow;                         /* table[0] and num / table[0] below 2**32 */
} head_t;

static inline int64_t wrap_mul_add(int64_t a, int64_t b, int64_t c)
{
    return (int64_t)((uint64_t)a * (uint64_t)b + (uint64_t)c);
}

/* ---- accumulators, one row ---- */

static void dot_row_scalar(const head_t *h, const uint8_t *x, int64_t *acc)
{
    const int8_t *w = (const int8_t *)h->w;
    Py_ssize_t k = h->k;
    for (Py_ssize_t j = 0; j < h->m; j++) {
        const int8_t *wj = w + j * k;
        if (h->wide) {
            int64_t s = 0;
            for (Py_ssize_t i = 0; i < k; i++)
                s += (int64_t)x[i] * wj[i];
            acc[j] = s;
        } else {
            int32_t s = 0;              /* the K-term int32 proof holds (checked at prepare) */
            for (Py_ssize_t i = 0; i < k; i++)
                s += (int32_t)x[i] * wj[i];
            acc[j] = s;
        }
    }
}

/* Groups of classes: group g covers classes [start, start + size); balanced sizes <= max. */
static inline Py_ssize_t n_groups(Py_ssize_t m, int gmax) { return (m + gmax - 1) / gmax; }
static inline Py_ssize_t group_start(Py_ssize_t m, Py_ssize_t ng, Py_ssize_t g)
{
    return g * (m / ng) + (g < m % ng ? g : m % ng);
}

#if HEAD_X86
#define AVX2 __attribute__((target("avx2")))
#define VNNI __attribute__((target("avx512f,avx512bw,avx512vnni")))

/* Lane j of the result is the sum of the 8 lanes of a[j] (0 for j >= G): hadd twice pairs up
 * and adds within 128-bit halves, the last add joins the halves; every step adds disjoint
 * subsets of one accumulator's products. */
static inline AVX2 __attribute__((always_inline)) __m256i reduce8(const __m256i *a, const int G)
{
    const __m256i zero = _mm256_setzero_si256();
    __m256i b[4], c[2];
    for (int i = 0; i < 4; i++)
        b[i] = _mm256_hadd_epi32(2 * i < G ? a[2 * i] : zero, 2 * i + 1 < G ? a[2 * i + 1] : zero);
    for (int i = 0; i < 2; i++)         /* half q of c[i]: classes 4i..4i+3 over lanes 4q..4q+3 */
        c[i] = _mm256_hadd_epi32(b[2 * i], b[2 * i + 1]);
    return _mm256_add_epi32(_mm256_permute2x128_si256(c[0], c[1], 0x20),
                            _mm256_permute2x128_si256(c[0], c[1], 0x31));
}

/* G classes whose int16 weights are interleaved per 16-pixel step: w[(c * G + g) * 16 + i]. */
static inline AVX2 __attribute__((always_inline)) void
avx2_group(const uint8_t *x, const int16_t *w, Py_ssize_t k, Py_ssize_t nchunks, const int G,
           int64_t *acc)
{
    __m256i a[AVX2_GROUP_MAX];
    for (int g = 0; g < G; g++)
        a[g] = _mm256_setzero_si256();
    const Py_ssize_t full = k / 16;
    for (Py_ssize_t c = 0; c < nchunks; c++) {
        __m128i xb;
        if (c < full) {
            xb = _mm_loadu_si128((const __m128i *)(x + 16 * c));
        } else {                        /* the partial last step: never read past the row */
            uint8_t tail[16] = {0};
            memcpy(tail, x + 16 * c, (size_t)(k - 16 * c));
            xb = _mm_loadu_si128((const __m128i *)tail);
        }
        const __m256i xv = _mm256_cvtepu8_epi16(xb);
        const int16_t *wc = w + c * G * 16;
        for (int g = 0; g < G; g++)
            a[g] = _mm256_add_epi32(a[g], _mm256_madd_epi16(
                xv, _mm256_load_si256((const __m256i *)(wc + g * 16))));
    }
    int32_t sums[16];
    _mm256_storeu_si256((__m256i *)sums, reduce8(a, G));
    if (G > 8)
        _mm256_storeu_si256((__m256i *)(sums + 8), reduce8(a + 8, G - 8));
    for (int g = 0; g < G; g++)
        acc[g] = sums[g];
}

#define AVX2_CASE(G) case G: avx2_group(x, w, h->k, h->nchunks, G, acc + j0); break;

static AVX2 void dot_row_avx2(const head_t *h, const uint8_t *x, int64_t *acc)
{
    Py_ssize_t ng = n_groups(h->m, AVX2_GROUP_MAX);
    const int16_t *w = (const int16_t *)h->w;
    for (Py_ssize_t g = 0; g < ng; g++) {
        Py_ssize_t j0 = group_start(h->m, ng, g), size = group_start(h->m, ng, g + 1) - j0;
        switch (size) {
            AVX2_CASE(1) AVX2_CASE(2) AVX2_CASE(3) AVX2_CASE(4) AVX2_CASE(5) AVX2_CASE(6)
            AVX2_CASE(7) AVX2_CASE(8) AVX2_CASE(9) AVX2_CASE(10) AVX2_CASE(11) AVX2_CASE(12)
        }
        w += h->nchunks * size * 16;
    }
}

/* Lane j of the result is the sum of the 16 lanes of a[j] (0 for j >= G): a transposing
 * add tree, each step adding disjoint subsets of one accumulator's products. */
static inline VNNI __attribute__((always_inline)) __m512i reduce16(const __m512i *a, const int G)
{
    const __m512i zero = _mm512_setzero_si512();
    __m512i b[8], c[4], e[2];
    for (int i = 0; i < 8; i++) {       /* per 128-bit lane: [x0+x2, y0+y2, x1+x3, y1+y3] */
        __m512i x = 2 * i < G ? a[2 * i] : zero, y = 2 * i + 1 < G ? a[2 * i + 1] : zero;
        b[i] = _mm512_add_epi32(_mm512_unpacklo_epi32(x, y), _mm512_unpackhi_epi32(x, y));
    }
    for (int i = 0; i < 4; i++)         /* per 128-bit lane: classes 4i..4i+3 */
        c[i] = _mm512_add_epi32(_mm512_unpacklo_epi64(b[2 * i], b[2 * i + 1]),
                                _mm512_unpackhi_epi64(b[2 * i], b[2 * i + 1]));
    for (int i = 0; i < 2; i++)         /* lanes 0+1, 2+3 of c[2i], then of c[2i+1] */
        e[i] = _mm512_add_epi32(
            _mm512_shuffle_i32x4(c[2 * i], c[2 * i + 1], _MM_SHUFFLE(2, 0, 2, 0)),
            _mm512_shuffle_i32x4(c[2 * i], c[2 * i + 1], _MM_SHUFFLE(3, 1, 3, 1)));
    return _mm512_add_epi32(_mm512_shuffle_i32x4(e[0], e[1], _MM_SHUFFLE(2, 0, 2, 0)),
                            _mm512_shuffle_i32x4(e[0], e[1], _MM_SHUFFLE(3, 1, 3, 1)));
}

/* acc += the four-byte dot products of u8 x with s8 *w, in place: GCC 12 copies the
 * accumulator around _mm512_dpbusd_epi32 in a loop, two extra moves per instruction. */
static inline VNNI __attribute__((always_inline)) void dpbusd(__m512i *acc, __m512i x,
                                                               const int8_t *w)
{
    __asm__("vpdpbusd %2, %1, %0" : "+v"(*acc) : "v"(x), "m"(*(const __m512i *)w));
}

/* G classes whose int8 weights are interleaved per 64-pixel step: w[(c * G + g) * 64 + i];
 * their G int32 sums are stored at sums[0..G). */
static inline VNNI __attribute__((always_inline)) void
vnni_group(const uint8_t *x, const int8_t *w, Py_ssize_t k, Py_ssize_t nchunks, const int G,
           int32_t *sums)
{
    __m512i a[VNNI_GROUP_MAX];
    for (int g = 0; g < G; g++)
        a[g] = _mm512_setzero_si512();
    const Py_ssize_t full = k / 64;
    for (Py_ssize_t c = 0; c < full; c++) {
        const __m512i xv = _mm512_loadu_si512((const void *)(x + 64 * c));
        const int8_t *wc = w + c * G * 64;
        for (int g = 0; g < G; g++)
            dpbusd(&a[g], xv, wc + g * 64);
    }
    if (full < nchunks) {               /* the partial last step: a masked load, no overread */
        const __m512i xv = _mm512_maskz_loadu_epi8(((__mmask64)1 << (k - 64 * full)) - 1,
                                                   x + 64 * full);
        const int8_t *wc = w + full * G * 64;
        for (int g = 0; g < G; g++)
            dpbusd(&a[g], xv, wc + g * 64);
    }
    _mm512_mask_storeu_epi32(sums, (__mmask16)((1u << G) - 1), reduce16(a, G));
}

#define VNNI_CASE(G) case G: vnni_group(x, w, h->k, h->nchunks, G, sums + j0); break;

static VNNI void dot_row_vnni(const head_t *h, const uint8_t *x, int32_t *sums)
{
    Py_ssize_t ng = n_groups(h->m, VNNI_GROUP_MAX);
    const int8_t *w = (const int8_t *)h->w;
    for (Py_ssize_t g = 0; g < ng; g++) {
        Py_ssize_t j0 = group_start(h->m, ng, g), size = group_start(h->m, ng, g + 1) - j0;
        switch (size) {
            VNNI_CASE(1) VNNI_CASE(2) VNNI_CASE(3) VNNI_CASE(4) VNNI_CASE(5) VNNI_CASE(6)
            VNNI_CASE(7) VNNI_CASE(8) VNNI_CASE(9) VNNI_CASE(10) VNNI_CASE(11) VNNI_CASE(12)
            VNNI_CASE(13) VNNI_CASE(14) VNNI_CASE(15) VNNI_CASE(16)
        }
        w += h->nchunks * size * 64;
    }
}

#define VNNI_FINISH __attribute__((target("avx512f,avx512bw,avx512dq,avx512vl,avx512vnni")))

static inline VNNI_FINISH __mmask8 lanes8(Py_ssize_t m, Py_ssize_t c)
{
    return m - 8 * c >= 8 ? (__mmask8)0xFF : (__mmask8)((1u << (m - 8 * c)) - 1);
}

/* finish_row's arithmetic, 8 classes per int64 vector: vpaddq (and vpmullq) wrap like the
 * scalar uint64 code, vpmuldq/vpmuludq give the same products where the operands are proven
 * to fit 32 bits, vpsravq/vpsraq are its arithmetic shifts, vpminuq its unsigned min, and the
 * row sum, added in another order, is the same uint64 (prepare rules out wrapping). */
static VNNI_FINISH void finish_row_vnni(const head_t *h, const int32_t *sums, int64_t *z,
                                        void *out, Py_ssize_t row, int mode)
{
    const Py_ssize_t m = h->m, nc = (m + 7) / 8;
    __m512i vmx = _mm512_set1_epi64(INT64_MIN);
    for (Py_ssize_t c = 0; c < nc; c++) {
        __mmask8 k = lanes8(m, c);
        __m512i acc = _mm512_cvtepi32_epi64(_mm256_maskz_loadu_epi32(k, sums + 8 * c));
        /* vpmuldq multiplies the low 32 bits of each lane, signed: acc is an int32 and the
         * multiplier lies in [0, 2**31) (checked at prepare), so the int64 product is exact,
         * as vpmullq's (three uops) would be. */
        __m512i v = _mm512_add_epi64(_mm512_mul_epi32(acc, _mm512_maskz_loadu_epi64(k, h->mult + 8 * c)),
                                     _mm512_maskz_loadu_epi64(k, h->off + 8 * c));
        v = _mm512_srav_epi64(v, _mm512_maskz_loadu_epi64(k, h->shift + 8 * c));
        _mm512_storeu_si512(z + 8 * c, v);  /* whole vectors: z has 8 entries of padding */
        vmx = _mm512_mask_max_epi64(vmx, k, vmx, v);
    }
    /* The lookups by vpgatherqq from d computed in registers. (Scalar lookups from z ran at
     * half this speed: each scalar load of a lane that a masked vector store had just
     * written waits for that store to retire instead of being forwarded from it.) */
    const __m512i mx = _mm512_set1_epi64(_mm512_reduce_max_epi64(vmx));
    const __m512i cap = _mm512_set1_epi64(255);
    __m512i vs = _mm512_setzero_si512();
    for (Py_ssize_t c = 0; c < nc; c++) {
        /* mx >= z in the lanes that count: the difference is exact and >= 0 */
        __m512i d = _mm512_min_epu64(_mm512_sub_epi64(mx, _mm512_loadu_si512(z + 8 * c)), cap);
        __m512i e = _mm512_mask_i64gather_epi64(_mm512_setzero_si512(), lanes8(m, c), d,
                                                h->table, 8);
        _mm512_storeu_si512(z + 8 * c, e);
        vs = _mm512_add_epi64(vs, e);
    }
    const uint64_t s = (uint64_t)_mm512_reduce_add_epi64(vs);
    const __m512i r = _mm512_set1_epi64(h->num / (int64_t)s);
    const __m512i half = _mm512_set1_epi64(h->half);
    const __m128i rbits = _mm_cvtsi32_si128(h->rbits);
    int64_t best = -1, arg = 0;
    for (Py_ssize_t c = 0; c < nc; c++) {
        __mmask8 k = lanes8(m, c);
        const __m512i e = _mm512_maskz_loadu_epi64(k, z + 8 * c);
        /* vpmuludq (low 32 bits, unsigned) where prepare proved e <= table[0] and r <=
         * num / table[0] both below 2**32; else vpmullq, which wraps like the scalar code. */
        __m512i p = _mm512_sra_epi64(_mm512_add_epi64(
            h->narrow ? _mm512_mul_epu32(e, r) : _mm512_mullo_epi64(e, r), half), rbits);
        if (mode == MODE_ARGMAX) {      /* 0 <= p <= out_max: p is the stored code itself */
            int64_t top_c = _mm512_mask_reduce_max_epi64(k, p);
            if (top_c > best) {
                best = top_c;
                arg = 8 * c + __builtin_ctz(_mm512_mask_cmpeq_epi64_mask(k, p, _mm512_set1_epi64(top_c)));
            }
        } else if (h->out_item == 1) {
            _mm512_mask_cvtepi64_storeu_epi8((uint8_t *)out + row * m + 8 * c, k, p);
        } else {
            _mm512_mask_cvtepi64_storeu_epi16((uint16_t *)out + row * m + 8 * c, k, p);
        }
    }
    if (mode == MODE_ARGMAX)
        ((int64_t *)out)[row] = arg;
}

/* All sums of a few rows first, then their finishes: the finishes are short chains of long
 * latencies (vpmullq, the gather, the division) that overlap only when side by side. */
static VNNI_FINISH void head_rows_vnni(const head_t *h, const uint8_t *x, Py_ssize_t r0,
                                       Py_ssize_t r1, void *out, int mode, int64_t *z)
{
    const Py_ssize_t m = h->m, zs = m + 8, ss = 2 * (m + 16);   /* per-row strides */
    int32_t *sums = (int32_t *)(z + FINISH_BLOCK * zs);
    for (Py_ssize_t row0 = r0; row0 < r1; row0 += FINISH_BLOCK) {
        Py_ssize_t nb = r1 - row0 < FINISH_BLOCK ? r1 - row0 : FINISH_BLOCK;
        for (Py_ssize_t i = 0; i < nb; i++)
            dot_row_vnni(h, x + (row0 + i) * h->k, sums + i * ss);
        for (Py_ssize_t i = 0; i < nb; i++)
            finish_row_vnni(h, sums + i * ss, z + i * zs, out, row0 + i, mode);
    }
}
#endif  /* HEAD_X86 */

static int isa_supported(int isa)
{
    if (isa == ISA_SCALAR)
        return 1;
#if HEAD_X86
    __builtin_cpu_init();
    if (isa == ISA_AVX2)
        return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("bmi2");
    if (isa == ISA_AVX512_VNNI)
        return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw")
            && __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl")
            && __builtin_cpu_supports("avx512vnni");
#endif
    return 0;
}

/* ---- requantization and softmax, one row (as quant/native/_native.c's softmax_head) ---- */

/* z holds the row's accumulators on entry. The per-class constants are read through restrict
 * locals, so that the stores to z cannot be taken to alias them. */
static inline __attribute__((always_inline)) void
finish_row(const head_t *h, int64_t *restrict z, void *out, Py_ssize_t row, int mode)
{
    const Py_ssize_t m = h->m;
    const int64_t *restrict mult = h->mult, *restrict off = h->off, *restrict shift = h->shift;
    const int64_t *restrict table = h->table;
    const int64_t half = h->half;
    const int rbits = h->rbits;
    int64_t mx = INT64_MIN;
    for (Py_ssize_t j = 0; j < m; j++) {
        z[j] = wrap_mul_add(z[j], mult[j], off[j]) >> shift[j];
        mx = z[j] > mx ? z[j] : mx;
    }
    uint64_t s = 0;
    for (Py_ssize_t j = 0; j < m; j++) {
        uint64_t d = (uint64_t)mx - (uint64_t)z[j];         /* mx >= z[j]: exact, >= 0 */
        z[j] = table[d < 255 ? d : 255];
        s += (uint64_t)z[j];
    }
    const int64_t r = h->num / (int64_t)s;  /* s >= table[0] > 0, checked at prepare */
    if (mode == MODE_ARGMAX) {
        int64_t best = -1, arg = 0;
        for (Py_ssize_t j = 0; j < m; j++) {
            int64_t p = wrap_mul_add(z[j], r, half) >> rbits;
            p = h->out_item == 1 ? (uint8_t)p : (uint16_t)p;       /* the stored code */
            if (p > best) { best = p; arg = j; }                 /* first index on ties */
        }
        ((int64_t *)out)[row] = arg;
    } else if (h->out_item == 1) {
        uint8_t *restrict o = (uint8_t *)out + row * m;
        for (Py_ssize_t j = 0; j < m; j++)
            o[j] = (uint8_t)(wrap_mul_add(z[j], r, half) >> rbits);
    } else {
        uint16_t *restrict o = (uint16_t *)out + row * m;
        for (Py_ssize_t j = 0; j < m; j++)
            o[j] = (uint16_t)(wrap_mul_add(z[j], r, half) >> rbits);
    }
}

/* One instantiation per instruction set, so that finish_row is compiled for it too. */
#define DEFINE_HEAD_ROWS(NAME, ATTR, DOT)                                                     \
    static ATTR void NAME(const head_t *h, const uint8_t *x, Py_ssize_t r0, Py_ssize_t r1,   \
                          void *out, int mode, int64_t *z)                                   \
    {                                                                                        \
        for (Py_ssize_t row = r0; row < r1; row++) {                                         \
            DOT(h, x + row * h->k, z);                                                       \
            finish_row(h, z, out, row, mode);                                                \
        }                                                                                    \
    }

DEFINE_HEAD_ROWS(head_rows_scalar, , dot_row_scalar)
#if HEAD_X86
DEFINE_HEAD_ROWS(head_rows_avx2, __attribute__((target("avx2,bmi2"))), dot_row_avx2)
#endif

static void head_rows(const head_t *h, const uint8_t *x, Py_ssize_t r0, Py_ssize_t r1,
                      void *out, int mode, int64_t *z)
{
#if HEAD_X86
    if (h->isa == ISA_AVX512_VNNI)
        head_rows_vnni(h, x, r0, r1, out, mode, z);
    else if (h->isa == ISA_AVX2)
        head_rows_avx2(h, x, r0, r1, out, mode, z);
    else
#endif
        head_rows_scalar(h, x, r0, r1, out, mode, z);
}

/* ---- prepared weights ---- */

static void head_free(head_t *h)
{
    if (!h)
        return;
    free(h->w);
    free(h->mult);
    free(h->off);
    free(h->shift);
    free(h);
}

static void capsule_free(PyObject *cap)
{
    head_free((head_t *)PyCapsule_GetPointer(cap, CAPSULE_NAME));
}

/* The isa's layout: scalar: int8 (M, K) as given; avx2: int16, per class group, per 16-pixel
 * step, the group's classes side by side; avx512_vnni: int8 likewise per 64-pixel step.
 * Padding past K is 0, so a partial last step adds nothing. */
static int prepare_weights(head_t *h, const int8_t *codes)
{
    const Py_ssize_t m = h->m, k = h->k;
    if (h->isa == ISA_SCALAR) {
        h->w = malloc((size_t)(m * k));
        if (!h->w)
            return -1;
        memcpy(h->w, codes, (size_t)(m * k));
        return 0;
    }
    const int item = h->isa == ISA_AVX2 ? 2 : 1;
    const Py_ssize_t chunk = h->chunk, nc = h->nchunks;
    size_t bytes = (size_t)(m * nc * chunk * item);
    h->w = aligned_alloc(64, (bytes + 63) / 64 * 64);
    if (!h->w)
        return -1;
    memset(h->w, 0, (bytes + 63) / 64 * 64);
    Py_ssize_t ng = n_groups(m, h->group_max), base = 0;
    for (Py_ssize_t g = 0; g < ng; g++) {
        Py_ssize_t j0 = group_start(m, ng, g), size = group_start(m, ng, g + 1) - j0;
        for (Py_ssize_t c = 0; c < nc; c++)
            for (Py_ssize_t gi = 0; gi < size; gi++)
                for (Py_ssize_t i = 0; i < chunk && c * chunk + i < k; i++) {
                    Py_ssize_t at = base + (c * size + gi) * chunk + i;
                    int8_t v = codes[(j0 + gi) * k + c * chunk + i];
                    if (item == 2)
                        ((int16_t *)h->w)[at] = v;
                    else
                        ((int8_t *)h->w)[at] = v;
                }
        base += nc * size * chunk;
    }
    return 0;
}

static int64_t *copy_int64(const Py_buffer *b)
{
    int64_t *p = (int64_t *)malloc((size_t)b->len);
    if (p)
        memcpy(p, b->buf, (size_t)b->len);
    return p;
}

/* Checks everything once, so that run() needs no per-call validation but pointers. */
static const char *check_prepare(const Py_buffer *codes, Py_ssize_t m, Py_ssize_t k,
                                 const Py_buffer *mult, const Py_buffer *off,
                                 const Py_buffer *shift, const Py_buffer *table, int rbits,
                                 long long out_max, int out_item, int isa, int wide)
{
    if (m < 1 || k < 1 || m >= ((Py_ssize_t)1 << 30) || codes->len % m != 0
        || codes->len / m != k)
        return "codes must hold classes x features int8 values, classes in 1..2**30-1, "
               "features >= 1";
    if (mult->len != 8 * m || off->len != 8 * m || shift->len != 8 * m)
        return "multipliers, offsets and shifts must be int64, one per class";
    if (table->len != 8 * 256)
        return "the table must hold 256 int64 entries";
    if ((out_item != 1 && out_item != 2) || out_max < 1 || out_max > (out_item == 1 ? 255 : 65535))
        return "out_max must fit the output code (1..255 for uint8, 1..65535 for uint16)";
    if (rbits < 1 || rbits > 46)
        return "reciprocal bits must lie in 1..46 (out_max << bits below 2**62)";
    if (isa < 0 || isa >= N_ISA)
        return "unknown instruction set";
    if (!isa_supported(isa))
        return "this CPU lacks the requested instruction set";
    if (wide && isa != ISA_SCALAR)
        return "int64 sums exist only on the scalar path";
    const int64_t *t = (const int64_t *)table->buf;
    if (t[0] < 1)
        return "table[0] must be > 0 (the row max's entry)";
    for (int d = 0; d < 256; d++)
        if (t[d] < 0 || t[d] > t[0])
            return "table entries must lie in 0..table[0]";
    if ((uint64_t)t[0] > (UINT64_C(1) << 62) / (uint64_t)m)
        return "classes x table[0] must stay below 2**62 (the row sum)";
    for (Py_ssize_t j = 0; j < m; j++) {
        int64_t sh = ((const int64_t *)shift->buf)[j], mu = ((const int64_t *)mult->buf)[j];
        if (sh < 1 || sh > 62)
            return "shifts must lie in 1..62";
        if (mu < 0 || mu >= ((int64_t)1 << 31))
            return "multipliers must lie in 0..2**31-1";
    }
    /* The accumulator proof again, from the codes themselves: every partial sum of the K
     * products lies in [K * 255 * min(w, 0), K * 255 * max(w, 0)]. */
    int lo = 0, hi = 0;
    for (Py_ssize_t i = 0; i < codes->len; i++) {
        int v = ((const int8_t *)codes->buf)[i];
        lo = v < lo ? v : lo;
        hi = v > hi ? v : hi;
    }
    if (k > INT64_MAX / (255 * 128))
        return "int64 sums could overflow for this many features";
    if (!wide && ((int64_t)k * 255 * hi > INT32_MAX || (int64_t)k * 255 * lo < INT32_MIN))
        return "int32 sums could overflow for these codes and this many features "
               "(use int64 sums)";
    return NULL;
}

static PyObject *py_prepare(PyObject *self, PyObject *args)
{
    Py_buffer codes, mult, off, shift, table;
    Py_ssize_t m, k;
    int rbits, out_item, isa, wide;
    long long out_max;
    (void)self;
    if (!PyArg_ParseTuple(args, "y*nny*y*y*y*iLiii", &codes, &m, &k, &mult, &off, &shift,
                          &table, &rbits, &out_max, &out_item, &isa, &wide))
        return NULL;
    PyObject *result = NULL;
    const char *why = check_prepare(&codes, m, k, &mult, &off, &shift, &table, rbits, out_max,
                                    out_item, isa, wide);
    head_t *h = NULL;
    if (why) {
        PyErr_Format(PyExc_ValueError, "int8 head: %s", why);
        goto done;
    }
    h = (head_t *)calloc(1, sizeof(head_t));
    if (!h)
        goto nomem;
    h->m = m;
    h->k = k;
    h->isa = isa;
    h->wide = wide;
    h->group_max = isa == ISA_AVX2 ? AVX2_GROUP_MAX : VNNI_GROUP_MAX;
    h->chunk = isa == ISA_AVX2 ? 16 : isa == ISA_AVX512_VNNI ? 64 : 1;
    h->nchunks = (k + h->chunk - 1) / h->chunk;
    memcpy(h->table, table.buf, sizeof h->table);
    h->rbits = rbits;
    h->num = (int64_t)out_max << rbits;
    h->half = (int64_t)1 << (rbits - 1);
    h->out_item = out_item;
    h->narrow = h->table[0] < ((int64_t)1 << 32) && h->num / h->table[0] < ((int64_t)1 << 32);
    h->mult = copy_int64(&mult);
    h->off = copy_int64(&off);
    h->shift = copy_int64(&shift);
    if (!h->mult || !h->off || !h->shift || prepare_weights(h, (const int8_t *)codes.buf) < 0)
        goto nomem;
    result = PyCapsule_New(h, CAPSULE_NAME, capsule_free);
    if (!result)
        head_free(h);
    goto done;
nomem:
    head_free(h);
    PyErr_NoMemory();
done:
    PyBuffer_Release(&codes); PyBuffer_Release(&mult); PyBuffer_Release(&off);
    PyBuffer_Release(&shift); PyBuffer_Release(&table);
    return result;
}

/* run(head, x_address, rows, out_address, nthreads, mode): the caller (int8_head.py) has
 * checked that x is a contiguous uint8 (rows, K) CPU tensor and out a contiguous (rows, M)
 * tensor of the head's output type (mode 0) or int64 (rows,) (mode 1). */
static PyObject *py_run(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    (void)self;
    if (nargs != 6) {
        PyErr_SetString(PyExc_TypeError, "run takes 6 arguments");
        return NULL;
    }
    const head_t *h = (const head_t *)PyCapsule_GetPointer(args[0], CAPSULE_NAME);
    if (!h)
        return NULL;
    const uint8_t *x = (const uint8_t *)PyLong_AsVoidPtr(args[1]);
    Py_ssize_t rows = PyLong_AsSsize_t(args[2]);
    void *out = PyLong_AsVoidPtr(args[3]);
    long nthreads = PyLong_AsLong(args[4]), mode = PyLong_AsLong(args[5]);
    if (PyErr_Occurred())
        return NULL;
    if (rows < 0 || (rows > 0 && (!x || !out)) || nthreads < 1
        || (mode != MODE_PROBABILITIES && mode != MODE_ARGMAX)) {
        PyErr_SetString(PyExc_ValueError, "int8 head run: bad rows, address, threads or mode");
        return NULL;
    }
    Py_ssize_t nblocks = (rows + ROW_BLOCK - 1) / ROW_BLOCK;
    int nomem = 0;
    if (nthreads == 1 || nblocks == 1) {    /* no team at all: the small-batch latency */
        int64_t stack_z[SCRATCH_LEN(STACK_CLASSES)];
        int64_t *z = h->m <= STACK_CLASSES ? stack_z
            : (int64_t *)malloc((size_t)SCRATCH_LEN(h->m) * sizeof(int64_t));
        if (!z)
            return PyErr_NoMemory();
        if (rows > ROW_BLOCK) {
            Py_BEGIN_ALLOW_THREADS
            head_rows(h, x, 0, rows, out, (int)mode, z);
            Py_END_ALLOW_THREADS
        } else {
            head_rows(h, x, 0, rows, out, (int)mode, z);
        }
        if (z != stack_z)
            free(z);
        Py_RETURN_NONE;
    }
    Py_BEGIN_ALLOW_THREADS
#pragma omp parallel num_threads((int)nthreads) if (nthreads > 1 && nblocks > 1) \
    reduction(|:nomem)
    {
        int64_t stack_z[SCRATCH_LEN(STACK_CLASSES)];
        int64_t *z = h->m <= STACK_CLASSES ? stack_z
            : (int64_t *)malloc((size_t)SCRATCH_LEN(h->m) * sizeof(int64_t));
        if (!z)
            nomem = 1;
#pragma omp for schedule(dynamic, 1)
        for (Py_ssize_t b = 0; b < nblocks; b++) {
            Py_ssize_t r1 = (b + 1) * ROW_BLOCK < rows ? (b + 1) * ROW_BLOCK : rows;
            if (z)
                head_rows(h, x, b * ROW_BLOCK, r1, out, (int)mode, z);
        }
        if (z != stack_z)
            free(z);
    }
    Py_END_ALLOW_THREADS
    if (nomem)
        return PyErr_NoMemory();
    Py_RETURN_NONE;
}

static PyObject *py_isas(PyObject *self, PyObject *args)
{
    (void)self;
    (void)args;
    PyObject *out = PyList_New(0);
    for (int isa = N_ISA - 1; out && isa >= 0; isa--) {
        if (!isa_supported(isa))
            continue;
        PyObject *name = PyUnicode_FromString(ISA_NAMES[isa]);
        if (!name || PyList_Append(out, name) < 0) {
            Py_XDECREF(name);
            Py_CLEAR(out);
        } else {
            Py_DECREF(name);
        }
    }
    return out;
}


static PyMethodDef methods[] = {
    {"prepare", py_prepare, METH_VARARGS,
     "prepare(codes, m, k, mult, off, shift, table, rbits, out_max, out_item, isa, wide)\n"
     "  -> capsule\n\n"
     "Checks the head's integers once and lays the int8 weight codes out for the isa\n"
     "(0 scalar, 1 avx2, 2 avx512_vnni); wide = 1 sums in int64 (scalar only)."},
    {"run", (PyCFunction)(void (*)(void))py_run, METH_FASTCALL,
     "run(head, x_address, rows, out_address, nthreads, mode) -> None\n\n"
     "Probability codes (mode 0) or the index of each row's largest code (mode 1) for rows\n"
     "uint8 pixel rows at x_address, written at out_address. Releases the GIL."},
    {"isas", py_isas, METH_NOARGS,
     "isas() -> list[str]\n\nThe instruction sequences this CPU runs, fastest first."},
    OPENMP_LIBRARY_METHOD,
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "quant.native._int8_head",
    "The fused integer softmax-regression head (see quant/native/int8_head.py).", -1, methods,
    NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC
PyInit__int8_head(void)
{
    return PyModule_Create(&module);
}
