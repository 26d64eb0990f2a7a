/* numfmt._native: numfmt.round_to's float-target rounding as one compiled loop per input type.
 *
 * For a float target described by its parameters (fraction bits m >= 1, emin, max finite
 * magnitude, signed, has inf / NaN / -0, the overflow rule, the rounding mode) each element is
 * rounded on its bit pattern with integer arithmetic: the significand and exponent are read
 * from the float32 / float64 bits, the shift k to the target's grid (2**qexp with qexp =
 * max(binade exponent, emin) - m, so subnormals included) is computed, the kept significand
 * q = sig >> k gets the mode's increment from the dropped bits D (ties by D against 2**(k-1);
 * "odd" sets q's last bit; "stochastic" carries iff u < D / 2**k exactly, u = K / 2**53 the
 * element's counter-based uniform of numfmt/stochastic.py), and q * 2**qexp (exact in double,
 * a carry into the next binade included) then meets the range rules of
 * numfmt/rangerule.py: -0 -> +0 without -0, overflow by the mode's direction (IEEE 754)
 * combined with the overflow rule, inf inputs kept where the format holds them. The results
 * are exactly the float64 algorithm's (numfmt/round_numpy.py), which the tests hold it to.
 *
 * Overflow under the "raise" rule and NaN into a format without NaN are not handled here: the
 * loop reports them (flags) and the caller reruns the Python path, which raises its error.
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
#ifdef _OPENMP
#include <dlfcn.h>
#include <omp.h>
#endif

#define CHUNK ((Py_ssize_t)1 << 15)

enum { RNE, RNA, RTZ, UP, DOWN, ODD, STOCH };            /* numfmt/native.py's MODES order */
enum { R_INF, R_NAN, R_SAT, R_RAISE };                   /* and its RULES order */
enum { F_OVERFLOW = 1, F_NAN = 2 };

typedef struct {
    int m, emin, is_signed, has_inf, has_nan, has_neg_zero, mode, rule;
    double hi, lo;                      /* the range: max and lowest (0 when unsigned) */
    uint64_t seed, start;
} Target;

static inline double from_bits64(uint64_t b) { double d; memcpy(&d, &b, 8); return d; }
static inline uint64_t to_bits64(double d) { uint64_t b; memcpy(&b, &d, 8); return b; }

/* numfmt.stochastic.uniform_bits: the 53 random bits of flat index i. */
static inline uint64_t uniform53(uint64_t seed, uint64_t i)
{
    uint64_t z = seed + (i + 1) * 0x9E3779B97F4A7C15ULL;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    z ^= z >> 31;
    return z >> 11;
}

/* 2**e as a double, for -1022 <= e <= 1023. */
static inline double pow2(int e) { return from_bits64((uint64_t)(e + 1023) << 52); }

/* The grid rounding of the finite nonzero value sig * 2**lsb (sig < 2**53), sign neg, index i. */
static inline __attribute__((always_inline)) double
round_grid(double x, uint64_t sig, int lsb, int neg, uint64_t i, const Target *t,
           const int mode)
{
    int e = lsb + 63 - __builtin_clzll(sig);             /* the binade exponent */
    int qexp = (e > t->emin ? e : t->emin) - t->m;
    int k = qexp - lsb;
    if (k <= 0)
        return x;                                        /* on the grid already */
    uint64_t q, d;
    int cmp;                                             /* D against half a spacing */
    if (k < 64) {
        q = sig >> k;
        d = sig & ((1ULL << k) - 1);
        uint64_t half = 1ULL << (k - 1);
        cmp = d > half ? 1 : (d == half ? 0 : -1);
    } else {
        q = 0, d = sig, cmp = -1;                        /* sig < 2**53 <= half */
    }
    int inexact = d != 0;
    switch (mode) {
    case RNE: q += cmp > 0 || (cmp == 0 && (q & 1)); break;
    case RNA: q += cmp >= 0; break;
    case RTZ: break;
    case UP: q += inexact && !neg; break;
    case DOWN: q += inexact && neg; break;
    case ODD: q |= (uint64_t)inexact; break;
    default: {                                           /* away iff K / 2**53 < D / 2**k */
        uint64_t kk = uniform53(t->seed, t->start + i), lim;
        if (k <= 53)
            lim = d << (53 - k);                         /* d < 2**k: no overflow */
        else if (k - 53 >= 64)
            lim = d != 0;                                /* ceil(D / 2**(k-53)), D < 2**53 */
        else
            lim = (d >> (k - 53)) + ((d & ((1ULL << (k - 53)) - 1)) != 0);
        q += kk < lim;
    }
    }
    double r = (double)q * pow2(qexp);                   /* q < 2**54: exact */
    return neg ? -r : r;
}

/* The element x (a double holding the input exactly) rounded into the target. */
static inline __attribute__((always_inline)) double
round_one(double x, uint64_t sig, int lsb, int neg, int special, uint64_t i, const Target *t,
          const int mode, int *flags)
{
    double r;
    if (special) {                                       /* NaN or inf */
        if (x != x) {
            if (!t->has_nan)
                *flags |= F_NAN;
            return x;
        }
        r = x;
    } else if (sig == 0) {
        r = x;                                           /* +-0 stays */
    } else {
        r = round_grid(x, sig, lsb, neg, i, t, mode);
    }
    if (!t->has_neg_zero)
        r = r + 0.0;                                     /* -0 -> +0 */
    int above = r > t->hi, below = r < t->lo;
    if (!(above | below))
        return r;
    if (!special) {                                      /* the mode's direction (IEEE 754) */
        if (above && (mode == RTZ || mode == DOWN || mode == ODD))
            return t->hi;
        if (below && (mode == RTZ || mode == UP || mode == ODD))
            return t->lo;
    } else if (t->has_inf && t->rule != R_SAT && (x > 0 || t->is_signed)) {
        return x;                                        /* an inf the format holds */
    }
    switch (t->rule) {
    case R_INF: return r > 0 ? INFINITY : (t->is_signed ? -INFINITY : NAN);
    case R_NAN: return NAN;
    case R_SAT: return above ? t->hi : t->lo;
    default: *flags |= F_OVERFLOW; return r;
    }
}

static inline __attribute__((always_inline)) int
run_f32(const float *x, float *out, Py_ssize_t n, Py_ssize_t base, const Target *t, const int mode)
{
    int flags = 0;
    for (Py_ssize_t j = 0; j < n; j++) {
        uint32_t b;
        memcpy(&b, &x[j], 4);
        uint32_t ef = (b >> 23) & 0xFF, f = b & 0x7FFFFF;
        uint64_t sig = ef ? (f | 0x800000u) : f;
        int lsb = ef ? (int)ef - 150 : -149;
        double r = round_one((double)x[j], sig, lsb, (int)(b >> 31), ef == 0xFF,
                             (uint64_t)(base + j), t, mode, &flags);
        out[j] = (float)r;
    }
    return flags;
}

static inline __attribute__((always_inline)) int
run_f64(const double *x, double *out, Py_ssize_t n, Py_ssize_t base, const Target *t,
        const int mode)
{
    int flags = 0;
    for (Py_ssize_t j = 0; j < n; j++) {
        uint64_t b = to_bits64(x[j]);
        uint32_t ef = (uint32_t)(b >> 52) & 0x7FF;
        uint64_t f = b & ((1ULL << 52) - 1);
        uint64_t sig = ef ? (f | (1ULL << 52)) : f;
        int lsb = ef ? (int)ef - 1075 : -1074;
        out[j] = round_one(x[j], sig, lsb, (int)(b >> 63), ef == 0x7FF, (uint64_t)(base + j),
                           t, mode, &flags);
    }
    return flags;
}

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__)
#define NUMFMT_CLONES __attribute__((target_clones("avx2", "default")))
#else
#define NUMFMT_CLONES
#endif

/* The deterministic modes without branches, so that the compiler vectorises the loop: the
 * same arithmetic as round_grid / round_one with the shift clamped to MB + 2 (beyond it the
 * significand is below half a spacing either way: q = 0, D = sig), 2**qexp applied as two
 * normal powers of two (exact: the product is a value of the target, or beyond its max), and
 * the specials and the range rules as selects. F / U: the float type and its bits; MB, BIAS:
 * its fraction bits and exponent bias. Needs m < MB and emin >= the input type's emin. */
#define FAST_LOOP(NAME, F, U, S, MB, BIAS, EALL, MODE)                                        \
static inline __attribute__((always_inline)) int                                            \
NAME(const F *x, F *out, Py_ssize_t n, const Target *t)                                     \
{                                                                                           \
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
        U mask = ((U)1 << kc) - 1, q = sig >> kc, d = sig & mask, half = (mask >> 1) + 1;   \
        /* the increment is (d + add) >> kc, add by mode (d < 2**kc: 0 or 1) */               \
        U add = MODE == RNE ? half - 1 + (q & 1) : MODE == RNA ? half                       \
                : MODE == UP ? mask & (neg - 1) : MODE == DOWN ? mask & -neg                  \
                : MODE == ODD ? mask : 0;                                                   \
        U inc = (d + add) >> kc;                                                            \
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

NUMFMT_CLONES static int
run_fast(const void *x, void *out, int itemsize, Py_ssize_t lo, Py_ssize_t n, const Target *t)
{
#define ONE(M) (itemsize == 4 \
    ? fast32_##M((const float *)x + lo, (float *)out + lo, n, t) \
    : fast64_##M((const double *)x + lo, (double *)out + lo, n, t))
    switch (t->mode) {
    case RNE: return ONE(RNE);
    case RNA: return ONE(RNA);
    case RTZ: return ONE(RTZ);
    case UP: return ONE(UP);
    case DOWN: return ONE(DOWN);
    default: return ONE(ODD);
    }
#undef ONE
}
#pragma GCC pop_options

/* One chunk, the mode a compile-time constant in each branch (the switch leaves the loop). */
static int
run_chunk(const void *x, void *out, int itemsize, Py_ssize_t lo, Py_ssize_t n, const Target *t)
{
    if (t->mode != STOCH && (itemsize == 8 || t->m < 23))
        return run_fast(x, out, itemsize, lo, n, t);
#define ONE(M) (itemsize == 4 \
    ? run_f32((const float *)x + lo, (float *)out + lo, n, lo, t, M) \
    : run_f64((const double *)x + lo, (double *)out + lo, n, lo, t, M))
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

static PyObject *
py_round_float(PyObject *self, PyObject *args)
{
    (void)self;
    unsigned long long xp, op, seed, start;
    Py_ssize_t n;
    int itemsize, nthreads;
    Target t;
    if (!PyArg_ParseTuple(args, "KKniiiiiiiiiddKKi", &xp, &op, &n, &itemsize, &t.m, &t.emin,
                          &t.is_signed, &t.has_inf, &t.has_nan, &t.has_neg_zero, &t.mode,
                          &t.rule, &t.hi, &t.lo, &seed, &start, &nthreads))
        return NULL;
    t.seed = seed, t.start = start;
    if ((itemsize != 4 && itemsize != 8) || n < 0 || t.m < 1 || t.m > 52 || t.mode < RNE ||
        t.mode > STOCH || t.rule < R_INF || t.rule > R_RAISE || t.emin < -1000) {
        PyErr_SetString(PyExc_ValueError, "round_float: bad parameters");
        return NULL;
    }
    const void *x = (const void *)(uintptr_t)xp;
    void *out = (void *)(uintptr_t)op;
    Py_ssize_t nchunks = (n + CHUNK - 1) / CHUNK;
    int flags = 0;
    Py_BEGIN_ALLOW_THREADS
#pragma omp parallel for num_threads(nthreads) schedule(dynamic) reduction(|:flags) \
    if (nthreads > 1 && nchunks > 1)
    for (Py_ssize_t c = 0; c < nchunks; c++) {
        Py_ssize_t lo = c * CHUNK, len = n - lo < CHUNK ? n - lo : CHUNK;
        flags |= run_chunk(x, out, itemsize, lo, len, &t);
    }
    Py_END_ALLOW_THREADS
    return PyLong_FromLong(flags);
}

static PyObject *
py_openmp_library(PyObject *self, PyObject *args)
{
    (void)self;
    (void)args;
#ifdef _OPENMP
    Dl_info info;
    if (dladdr((void *)&omp_get_max_threads, &info) && info.dli_fname)
        return PyUnicode_DecodeFSDefault(info.dli_fname);
#endif
    Py_RETURN_NONE;
}

static PyMethodDef methods[] = {
    {"round_float", py_round_float, METH_VARARGS,
     "round_float(x_ptr, out_ptr, n, itemsize, m, emin, signed, has_inf, has_nan,\n"
     "            has_negative_zero, mode, rule, max, lowest, seed, start, nthreads) -> int\n\n"
     "Rounds n contiguous float32 (itemsize 4) or float64 (8) values at x_ptr into the float\n"
     "target, writing the same type at out_ptr; element j draws the uniform of flat index\n"
     "start + j. Returns flags: 1 an overflow under the raise rule, 2 a NaN into a format\n"
     "without NaN (the outputs are then incomplete). Releases the GIL."},
    {"openmp_library", py_openmp_library, METH_NOARGS,
     "openmp_library() -> str | None\n\n"
     "Path of the OpenMP runtime these loops use (None: built without OpenMP)."},
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
