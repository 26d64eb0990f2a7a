/* numfmt._native: numfmt.round_to's float-target rounding as one compiled loop per input type.
 *
 * For a float target described by its parameters (fraction bits m >= 1, emin, max finite
 * magnitude, signed, has inf / NaN / -0, the overflow rule, the rounding mode) each float32 /
 * float64 element is rounded on its bit pattern with integer arithmetic (FAST_LOOP below) and
 * written as the same type: exactly the values of the float64 algorithm of
 * numfmt/round_numpy.py and numfmt/rangerule.py, which the tests hold it to bit for bit. The
 * stochastic mode draws numfmt/stochastic.py's counter-based uniforms (splitmix64 of the flat
 * index, 53 bits): away from zero iff u < D / 2**k, compared exactly in integers.
 *
 * Overflow under the "raise" rule and NaN into a format without NaN are only reported (flags):
 * the caller reruns the Python path, which raises its error.
 *
 * Threads: OpenMP over chunks handed out dynamically (a thread on a core that another process
 * holds takes fewer), used with nthreads > 1 only where this module's libgomp is torch's.
 */
#define _GNU_SOURCE                     /* dladdr */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#include <stdint.h>
#include <string.h>
#ifdef __linux__
#include <sys/mman.h>                   /* madvise */
#endif
#include "numfmt/openmp_library.h"    /* openmp_library(); <omp.h> under OpenMP */

#define CHUNK ((Py_ssize_t)1 << 15)       /* elements per work item */
#define HUGE_PAGE ((uint64_t)1 << 21)        /* a transparent huge page, bytes */
#define PAGE_CHUNK_MIN_BYTES ((Py_ssize_t)32 << 20)  /* outputs from here on: page-sized items */

enum { RNE, RNA, RTZ, UP, DOWN, ODD, STOCH };            /* numfmt/native.py's MODES order */
enum { R_INF, R_NAN, R_SAT, R_RAISE };                   /* and its RULES order */
enum { F_OVERFLOW = 1, F_NAN = 2 };

enum { OUT_SAME, OUT_CODE8, OUT_CODE16, OUT_BF16 };     /* numfmt/native.py's OUTPUTS order */

typedef struct {
    int m, emin, is_signed, has_inf, has_nan, has_neg_zero, mode, rule;
    double hi, lo;                      /* the range: max and lowest (0 when unsigned) */
    uint64_t seed, start;
    int out_kind;                       /* the input's float type, or the format's codes */
    int code_bits;                      /* the format's bits (codes' sign bit: code_bits - 1) */
    int odd_ok;                         /* float64 input may go through float32 to odd */
    uint32_t nan_code, posinf_code, neginf_code;
} Target;


/* numfmt.stochastic.uniform_bits: the 53 random bits of flat index i. */
static inline uint64_t uniform53(uint64_t seed, uint64_t i)
{
    uint64_t z = seed + (i + 1) * 0x9E3779B97F4A7C15ULL;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    z ^= z >> 31;
    return z >> 11;
}

/* Per-function clones picked at load time by the CPU (no global -march): AVX-512 has the 64-bit
 * multiplies of the stochastic mode's splitmix64 and 64-bit lanes for float64 input. */
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__)
#define NUMFMT_CLONES __attribute__((target_clones("arch=x86-64-v4", "avx2", "default")))
#else
#define NUMFMT_CLONES
#endif

/* The loop, one per input type (F the float type, U / S its unsigned / signed bits, MB its
 * fraction bits, BIAS its exponent bias, EALL its all-ones exponent field) and per mode (a
 * compile-time constant), written without branches so that the compiler vectorises it:
 * - the shift k to the grid: qexp = max(binade exponent, emin) - m (so subnormals of the
 *   target included; every input below the input type's normals lies below emin), clamped
 *   to MB + 2 for the shifts (beyond it the significand is below half a spacing either way:
 *   q = 0, D = sig; the stochastic mode uses the true k);
 * - the dropped bits D moved to the top of a word: its top bit is the half, the rest the
 *   sticky bits, which give each mode's increment (ties to even look at q's last bit);
 * - q * 2**qexp with 2**qexp as two normal powers of two (exact: the product is a value of
 *   the target or a power of two beyond its max), the sign put back on the bits;
 * - NaN / inf inputs copied, -0 -> +0 where the format has no -0 (adding +0.0), and the range:
 *   beyond [lowest, max] a finite value gets max / lowest where the mode never rounds past
 *   it, otherwise (and an inf the format does not hold) the overflow rule's value.
 * Needs m < MB and emin >= -126 (numfmt/native.py checks: formats float32 holds). */
#define FAST_LOOP(NAME, F, U, S, MB, BIAS, EALL, MODE)                                        \
static inline __attribute__((always_inline)) int                                            \
NAME(const F *x, F *out, Py_ssize_t n, uint64_t first, const Target *t)                     \
{                                                                                           \
    const uint64_t seed = t->seed;                                                          \
    const S m = t->m, kmin = MB - m, kbase = t->emin - m + BIAS + MB;                       \
    const F hi = (F)t->hi, lo = (F)t->lo, zero = t->has_neg_zero ? (F)-0.0 : (F)0.0;        \
    const F ovpos = t->rule == R_INF ? (F)INFINITY : t->rule == R_SAT ? hi : (F)NAN;        \
    const F ovneg = t->rule == R_INF ? (t->is_signed ? (F)-INFINITY : (F)NAN)               \
                    : t->rule == R_SAT ? lo : (F)NAN;                                       \
    const U keep_inf = t->has_inf && t->rule != R_SAT, raise = t->rule == R_RAISE;          \
    const U no_nan = !t->has_nan, sgn = t->is_signed;                                       \
    U ovpos_b, ovneg_b, hi_b, lo_b;                                                         \
    memcpy(&ovpos_b, &ovpos, sizeof(U));                                                    \
    memcpy(&ovneg_b, &ovneg, sizeof(U));                                                    \
    memcpy(&hi_b, &hi, sizeof(U));                                                          \
    memcpy(&lo_b, &lo, sizeof(U));                                                          \
    U flags = 0;                                                                            \
    for (Py_ssize_t j = 0; j < n; j++) {                                                    \
        F v = x[j];                                                                         \
        U b;                                                                                \
        memcpy(&b, &v, sizeof(U));                                                          \
        U neg = b >> (sizeof(U) * 8 - 1);                                                   \
        S ef = (S)((b >> MB) & EALL), f = (S)(b & (((U)1 << MB) - 1));                      \
        S efe = ef > 1 ? ef : 1;                                                            \
        U sig = (U)(ef != 0 ? (f | ((S)1 << MB)) : f);                                      \
        S k = kbase - (S)efe;                                                               \
        k = k > kmin ? k : kmin;                                                            \
        S qexp = k + (S)efe - BIAS - MB;                                                    \
        U kc = (U)(k < MB + 2 ? k : MB + 2);                                                \
        /* the dropped bits moved to the top: the first is the half, the others the rest */   \
        U q = sig >> kc, dt = (sig - (q << kc)) << ((U)(sizeof(U) * 8) - kc);               \
        U top = dt >> (sizeof(U) * 8 - 1), rest = (dt << 1) != 0, inexact = dt != 0;       \
        U inc = MODE == RNE ? top & (rest | (q & 1)) : MODE == RNA ? top                    \
                : MODE == UP ? inexact & (neg ^ 1) : MODE == DOWN ? inexact & neg           \
                : MODE == ODD ? inexact : 0;                                                \
        if (MODE == STOCH) {              /* away iff K / 2**53 < D / 2**k, in integers */   \
            uint64_t dd = (uint64_t)(dt >> ((U)(sizeof(U) * 8) - kc));                      \
            uint64_t sa = (uint64_t)(k <= 53 ? 53 - k : 0);                                 \
            uint64_t sj = (uint64_t)(k <= 53 ? 0 : (k - 53 < 63 ? k - 53 : 63));            \
            uint64_t dj = dd >> sj;                   /* k > 53: ceil(D / 2**(k-53)) */     \
            uint64_t lim = k <= 53 ? dd << sa : dj + ((dj << sj) != dd);                    \
            uint64_t kk = uniform53(seed, first + (uint64_t)j);                             \
            inc = (U)((int64_t)kk < (int64_t)lim);                                          \
        }                                                                                   \
        q = MODE == ODD ? q | inc : q + inc;                                                \
        S h = qexp >> 1;                                                                    \
        U pa = (U)(h + BIAS) << MB, pb = (U)(qexp - h + BIAS) << MB;                        \
        F fa, fb;                                                                           \
        memcpy(&fa, &pa, sizeof(U));                                                        \
        memcpy(&fb, &pb, sizeof(U));                                                        \
        F r = (F)(int32_t)q * fa * fb;                                                          \
        U rb;                                                                               \
        memcpy(&rb, &r, sizeof(U));                                                         \
        rb |= neg << (sizeof(U) * 8 - 1);                                                   \
        U special = (U)(ef == EALL);                                                        \
        rb = special ? b : rb;                                                              \
        memcpy(&r, &rb, sizeof(U));                                                         \
        r = r + zero;                                                                       \
        U above = r > hi, below = r < lo;                                                   \
        /* the mode's direction: toward zero (odd) and down give +max for a finite value  \
         * beyond it, up (and toward zero, odd) -max or 0: not an overflow (IEEE 754) */     \
        const int ch = MODE == RTZ || MODE == DOWN || MODE == ODD;                          \
        const int cl = MODE == RTZ || MODE == UP || MODE == ODD;                            \
        U sm = (U)0 - special, vp, vn;                     /* all ones at NaN / inf */      \
        vp = ch ? (sm & ovpos_b) | (~sm & hi_b) : ovpos_b;                                  \
        vn = cl ? (sm & ovneg_b) | (~sm & lo_b) : ovneg_b;                                  \
        F vpos, vneg;                                                                       \
        memcpy(&vpos, &vp, sizeof(U));                                                      \
        memcpy(&vneg, &vn, sizeof(U));                                                      \
        U held = keep_inf & special & ((U)(v > 0) | sgn);                                   \
        U over = (above | below) & (held ^ 1);                                              \
        F ov = r > 0 ? vpos : vneg;                                                         \
        F res = over ? ov : r;                                                              \
        U hit = ((ch ? above & special : above) | (cl ? below & special : below)) & (held ^ 1); \
        flags |= (hit & raise) | (((U)(v != v) & no_nan) << 1);                             \
        out[j] = res;                                                                       \
    }                                                                                       \
    return (int)flags;                                                                      \
}

/* No FP exceptions are looked at: the selects may then compute both sides (vectorisable); the
 * values are the same IEEE operations either way. */
#pragma GCC push_options
#pragma GCC optimize("no-trapping-math")
#define FAST_PAIR(M)                                                                        \
FAST_LOOP(fast32_##M, float, uint32_t, int32_t, 23, 127, 0xFF, M)                           \
FAST_LOOP(fast64_##M, double, uint64_t, int64_t, 52, 1023, 0x7FF, M)
FAST_PAIR(RNE)
FAST_PAIR(RNA)
FAST_PAIR(RTZ)
FAST_PAIR(UP)
FAST_PAIR(DOWN)
FAST_PAIR(ODD)
FAST_PAIR(STOCH)

/* The sign bit of the format's codes (FP6 and FP4 codes sit in the low bits of a byte). */
static inline uint32_t sgn_bit_of(const Target *t) { return (uint32_t)1 << (t->code_bits - 1); }

/* The format's own codes of rounded values r (each a value of the format, inf or NaN), as
 * the format's storage type holds them (torch's / ml_dtypes' float8 and float16 layouts):
 * - normal in the format (|r| >= 2**emin): r's bits shifted to m fraction bits, less the
 *   difference of the exponent biases (the format's bias is 1 - emin);
 * - below 2**emin: the integer |r| / 2**(emin - m) (exact: r is a multiple of that spacing);
 * - the sign bit on top for signed formats (fnuz formats never get -0: the loop made it +0);
 * - NaN, +inf, -inf: the codes numfmt/native.py derived from the format's layout.
 * bfloat16 is the top half of float32's bits (its subnormals are float32's). Branch-free, so
 * that it vectorises like the loop. */
#define ENCODE(NAME, F, U, S, MB, BIAS, KIND, C)                                          \
static inline __attribute__((always_inline)) void                                           \
NAME(const F *restrict r, C *restrict out, Py_ssize_t n, const Target *t)                  \
{                                                                                           \
    const U sbit = (U)1 << (sizeof(U) * 8 - 1);                                             \
    const U sh = (U)(MB - t->m);                                                            \
    const U off = (U)(BIAS + t->emin - 1) << t->m;                                         \
    const F tiny = (F)ldexp(1.0, t->emin), scale = (F)ldexp(1.0, t->m - t->emin);           \
    const U sgn_code = t->is_signed ? sgn_bit_of(t) : 0;                                    \
    const U nan = t->nan_code, pinf = t->posinf_code, ninf = t->neginf_code;                \
    for (Py_ssize_t j = 0; j < n; j++) {                                                    \
        F v = r[j];                                                                         \
        U b;                                                                                \
        memcpy(&b, &v, sizeof(U));                                                          \
        U neg = b >> (sizeof(U) * 8 - 1), ab = b & ~sbit;                                   \
        F a;                                                                                \
        memcpy(&a, &ab, sizeof(U));                                                         \
        U c;                                                                                \
        if (KIND == OUT_BF16) {                                                             \
            float f32 = (float)v;               /* exact: v is a bfloat16 value */          \
            uint32_t fb;                                                                    \
            memcpy(&fb, &f32, 4);                                                           \
            c = (U)(fb >> 16);                                                              \
        } else {                                                                            \
            U sub = a < tiny, cn = (ab >> sh) - off;                                        \
            F as = sub ? a : (F)0;              /* in range for the conversion */           \
            U cs = (U)(S)(as * scale);                                                      \
            c = (sub ? cs : cn) | (neg ? sgn_code : 0);                                     \
        }                                                                                   \
        c = a == (F)INFINITY ? (neg ? ninf : pinf) : c;                                     \
        c = v != v ? nan : c;                                                               \
        out[j] = (C)c;                                                                      \
    }                                                                                       \
}

ENCODE(encode32_8, float, uint32_t, int32_t, 23, 127, OUT_CODE8, uint8_t)
ENCODE(encode32_16, float, uint32_t, int32_t, 23, 127, OUT_CODE16, uint16_t)
ENCODE(encode32_bf, float, uint32_t, int32_t, 23, 127, OUT_BF16, uint16_t)
ENCODE(encode64_8, double, uint64_t, int64_t, 52, 1023, OUT_CODE8, uint8_t)
ENCODE(encode64_16, double, uint64_t, int64_t, 52, 1023, OUT_CODE16, uint16_t)
ENCODE(encode64_bf, double, uint64_t, int64_t, 52, 1023, OUT_BF16, uint16_t)

#define TILE 1024                       /* rounded values per encode pass (L1-resident) */

/* src[0..n) (of the input's type) rounded into dst[0..n) of the same type; `first` is the
 * flat index of src[0] (the stochastic mode's counter). */
static inline __attribute__((always_inline)) int
round_span(const void *src, void *dst, int itemsize, uint64_t first, Py_ssize_t n,
           const Target *t)
{
#define ONE(M) (itemsize == 4 \
    ? fast32_##M((const float *)src, (float *)dst, n, first, t) \
    : fast64_##M((const double *)src, (double *)dst, n, first, t))
    switch (t->mode) {
    case RNE: return ONE(RNE);
    case RNA: return ONE(RNA);
    case RTZ: return ONE(RTZ);
    case UP: return ONE(UP);
    case DOWN: return ONE(DOWN);
    case ODD: return ONE(ODD);
    default: return ONE(STOCH);
    }
#undef ONE
}

/* float64 -> float32 rounded to odd: toward zero, then the last bit set when inexact. Every
 * deterministic mode of a target with at least two fraction bits fewer than float32, on a
 * grid at least two bits coarser than float32's subnormals (odd_ok), rounds the result as
 * it would round x (Boldo & Melquiond, "Emulation of FMA and correctly rounded sums: proved
 * algorithms using rounding to odd", 2008): an inexact y is odd, so it is never a target
 * value and lies between the same two target values as x. The float32 loop has twice the
 * lanes of the float64 one. Values beyond float32 become +-FLT_MAX (odd), still beyond every
 * such target's max; NaN stays NaN (its bits are put back from x by the caller). */
static inline __attribute__((always_inline)) void
to_odd32(const double *restrict x, float *restrict y, Py_ssize_t n)
{
    for (Py_ssize_t j = 0; j < n; j++) {
        double v = x[j];
        float f = (float)v;                     /* nearest, ties to even */
        double back = (double)f;
        uint32_t b;
        memcpy(&b, &f, 4);
        uint32_t away = fabs(back) > fabs(v), inexact = back != v;
        b = (b - away) | inexact;               /* magnitude one step toward zero, then odd */
        b = v != v ? 0x7FC00000u : b;
        memcpy(&y[j], &b, 4);
    }
}

static inline __attribute__((always_inline)) void
encode_tile32(const float *r, void *dst, Py_ssize_t n, const Target *t)
{
    if (t->out_kind == OUT_CODE8) encode32_8(r, (uint8_t *)dst, n, t);
    else if (t->out_kind == OUT_CODE16) encode32_16(r, (uint16_t *)dst, n, t);
    else encode32_bf(r, (uint16_t *)dst, n, t);
}

static inline __attribute__((always_inline)) void
encode_tile64(const double *r, void *dst, Py_ssize_t n, const Target *t)
{
    if (t->out_kind == OUT_CODE8) encode64_8(r, (uint8_t *)dst, n, t);
    else if (t->out_kind == OUT_CODE16) encode64_16(r, (uint16_t *)dst, n, t);
    else encode64_bf(r, (uint16_t *)dst, n, t);
}

/* Bytes per output element. */
static inline int out_size_of(int out_kind, int itemsize)
{
    return out_kind == OUT_SAME ? itemsize : out_kind == OUT_CODE8 ? 1 : 2;
}

NUMFMT_CLONES static int
run_fast(const void *x, void *out, int itemsize, Py_ssize_t lo, Py_ssize_t n, const Target *t)
{
    const uint64_t first = t->start + (uint64_t)lo;
    const char *src = (const char *)x + lo * itemsize;
    const int odd = itemsize == 8 && t->mode != STOCH && t->odd_ok;
    if (t->out_kind == OUT_SAME && !odd)
        return round_span(src, (char *)out + lo * itemsize, itemsize, first, n, t);
    /* by tiles: (float64 rounded to odd into float32,) rounded, then encoded or widened */
    float narrow[TILE], r32[TILE];
    double r64[TILE];
    const int out_size = out_size_of(t->out_kind, itemsize);
    int flags = 0;
    for (Py_ssize_t i = 0; i < n; i += TILE) {
        Py_ssize_t len = n - i < TILE ? n - i : TILE;
        char *dst = (char *)out + (lo + i) * out_size;
        const double *x64 = (const double *)src + i;
        if (itemsize == 4) {
            flags |= round_span((const float *)src + i, r32, 4, first + i, len, t);
            encode_tile32(r32, dst, len, t);
        } else if (odd) {
            to_odd32(x64, narrow, len);
            flags |= round_span(narrow, r32, 4, first + i, len, t);
            if (t->out_kind != OUT_SAME) {
                encode_tile32(r32, dst, len, t);
            } else {
                double *o = (double *)dst;
                for (Py_ssize_t j = 0; j < len; j++)    /* exact; NaN keeps x's bits */
                    o[j] = x64[j] != x64[j] ? x64[j] : (double)r32[j];
            }
        } else {
            flags |= round_span(x64, r64, 8, first + i, len, t);
            encode_tile64(r64, dst, len, t);
        }
    }
    return flags;
}
#pragma GCC pop_options

static PyObject *
py_round_float(PyObject *self, PyObject *args)
{
    (void)self;
    unsigned long long xp, op, seed, start;
    Py_ssize_t n;
    int itemsize, nthreads;
    Target t;
    unsigned int nan_code, posinf_code, neginf_code;
    if (!PyArg_ParseTuple(args, "KKniiiiiiiiiddKKiiiIII", &xp, &op, &n, &itemsize, &t.m,
                          &t.emin, &t.is_signed, &t.has_inf, &t.has_nan, &t.has_neg_zero,
                          &t.mode, &t.rule, &t.hi, &t.lo, &seed, &start, &nthreads,
                          &t.out_kind, &t.code_bits, &nan_code, &posinf_code, &neginf_code))
        return NULL;
    t.seed = seed, t.start = start;
    t.nan_code = nan_code, t.posinf_code = posinf_code, t.neginf_code = neginf_code;
    /* two bits to spare below float32's precision and above its smallest subnormal */
    t.odd_ok = t.m + 2 <= 23 && t.emin - t.m >= -147;
    if ((itemsize != 4 && itemsize != 8) || n < 0 || t.m < 1 || t.m > 23 || t.mode < RNE ||
        t.mode > STOCH || t.rule < R_INF || t.rule > R_RAISE || t.emin < -126 ||
        (itemsize == 4 && t.m >= 23) || t.out_kind < OUT_SAME || t.out_kind > OUT_BF16 ||
        (t.out_kind == OUT_CODE16 || t.out_kind == OUT_CODE8 ? t.m - t.emin > 120 : 0) ||
        (t.out_kind == OUT_CODE8 && (t.code_bits < 2 || t.code_bits > 8)) ||
        (t.out_kind == OUT_CODE16 && (t.code_bits < 9 || t.code_bits > 16))) {
        PyErr_SetString(PyExc_ValueError, "round_float: bad parameters");
        return NULL;
    }
    const void *x = (const void *)(uintptr_t)xp;
    void *out = (void *)(uintptr_t)op;
    /* Chunk c covers out[first + (c - 1) * per, first + c * per) (chunk 0 the part before
     * `first`): on a large output, per spans whole 2 MiB pages of the output and `first` is
     * its first 2 MiB boundary, so that no two threads touch one fresh huge page (the second
     * would wait while the first takes its page fault and the kernel zeroes it). */
    const int out_size = out_size_of(t.out_kind, itemsize);
    Py_ssize_t per = CHUNK, first = 0;
    if (n * out_size >= PAGE_CHUNK_MIN_BYTES) {
        per = HUGE_PAGE / out_size;
        first = (Py_ssize_t)(((HUGE_PAGE - op % HUGE_PAGE) % HUGE_PAGE) / out_size);
        first = first < n ? first : n;
    }
    Py_ssize_t nchunks = 1 + (n - first + per - 1) / per;
    int flags = 0;
    Py_BEGIN_ALLOW_THREADS
#pragma omp parallel for num_threads(nthreads) schedule(dynamic) reduction(|:flags) \
    if (nthreads > 1 && nchunks > 2)
    for (Py_ssize_t c = 0; c < nchunks; c++) {
        Py_ssize_t lo = c == 0 ? 0 : first + (c - 1) * per;
        Py_ssize_t hi = c == 0 ? first : (first + c * per < n ? first + c * per : n);
        if (hi > lo)
            flags |= run_fast(x, out, itemsize, lo, hi - lo, &t);
    }
    Py_END_ALLOW_THREADS
    return PyLong_FromLong(flags);
}


/* advise_huge_pages(address, nbytes): a fresh output of many MB spends most of a fast loop's
 * time in first-touch page faults, one per 4 KiB page; transparent huge pages (Linux, in
 * "madvise" mode) take one per 2 MiB. Only whole 2 MiB pages inside the buffer are advised;
 * values are untouched. */
static PyObject *py_advise_huge_pages(PyObject *self, PyObject *args)
{
    unsigned long long addr, nbytes;
    (void)self;
    if (!PyArg_ParseTuple(args, "KK", &addr, &nbytes))
        return NULL;
#if defined(__linux__) && defined(MADV_HUGEPAGE)
    const unsigned long long huge = HUGE_PAGE;
    unsigned long long lo = (addr + huge - 1) & ~(huge - 1), hi = (addr + nbytes) & ~(huge - 1);
    if (addr + nbytes >= addr && hi > lo && madvise((void *)lo, (size_t)(hi - lo), MADV_HUGEPAGE) == 0)
        Py_RETURN_TRUE;
#endif
    Py_RETURN_FALSE;
}

static PyMethodDef methods[] = {
    {"round_float", py_round_float, METH_VARARGS,
     "round_float(x_ptr, out_ptr, n, itemsize, m, emin, signed, has_inf, has_nan,\n"
     "            has_negative_zero, mode, rule, max, lowest, seed, start, nthreads,\n"
     "            out_kind, code_bits, nan_code, posinf_code, neginf_code) -> int\n\n"
     "Rounds n contiguous float32 (itemsize 4) or float64 (8) values at x_ptr into the float\n"
     "target, writing the same type at out_ptr (out_kind 0) or the target's 8-bit (1) or\n"
     "16-bit (2) codes, or bfloat16 (3); element j draws the uniform of flat index\n"
     "start + j. Returns flags: 1 an overflow under the raise rule, 2 a NaN into a format\n"
     "without NaN (the outputs are then incomplete). Releases the GIL."},
    {"advise_huge_pages", py_advise_huge_pages, METH_VARARGS,
     "advise_huge_pages(address, nbytes) -> bool\n\n"
     "Asks Linux to back the whole 2 MiB pages of the buffer with transparent huge pages\n"
     "(madvise MADV_HUGEPAGE); True where it was accepted. Values are not changed."},
    OPENMP_LIBRARY_METHOD,
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "numfmt._native",
    "numfmt.round_to's compiled rounding loop (see numfmt/native.py).", -1, methods,
    NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC
PyInit__native(void)
{
    return PyModule_Create(&module);
}
