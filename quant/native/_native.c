/* quant._native: the encode and decode loops of LogInt8 and ScaledInt8 as fused passes.
 *
 * Each loop does, element by element and in the same IEEE operations, what the torch path
 * beside it does pass by pass, so the two agree bit for bit (the tests compare them, on every
 * float32 mantissa for LogInt8); all parameters are derived in Python.
 *
 * log_encode: LogInt8 codes from the exponent bits of w = (x * scale) ** (2 ** rounds)
 *   (quant/logdomain/kernels.py, encode_torch); float64 inputs next to a code boundary are
 *   marked -128 for an exact decision in Python. No libm call, and -ffp-contract=off rules out FMA
 *   contraction. w >= 0 after the squarings, so its bits are read unsigned (a logical shift
 *   vectorises where a 64-bit arithmetic one does not).
 * scaled_encode_f32: ScaledInt8's float32 per-tensor encode, one division and a
 *   round-half-even (quant/scaled/kernels.py, encode_fused_float32).
 * byte_lookup: decoding, a 256-entry table lookup per code byte.
 * softmax_head: the integer softmax-regression pipeline after its matmul (requantization,
 *   row max, table exp, reciprocal; quant/integer/linear.py and quant/integer/softmax.py).
 *
 * The loops release the GIL and run on `nthreads` OpenMP threads. quant/native/__init__.py
 * asks for more than one only when this module's OpenMP runtime is torch's own (the same
 * libgomp, found by soname when torch is imported first), so the work lands on torch's thread
 * team rather than competing with it; otherwise it splits the work over Python threads itself.
 */
#define _GNU_SOURCE                     /* dladdr */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdarg.h>
#include <stdint.h>
#include <string.h>
#include "numfmt/openmp_library.h"    /* openmp_library(); <omp.h> under OpenMP */

/* Work is cut into chunks of this many elements, handed to OpenMP threads dynamically. */
#define CHUNK ((Py_ssize_t)1 << 16)
#define NCHUNKS(n) (((n) + CHUNK - 1) / CHUNK)
#define CHUNK_LEN(c, n) ((n) - (c) * CHUNK < CHUNK ? (n) - (c) * CHUNK : CHUNK)

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__)
#define QUANT_CLONES __attribute__((target_clones("avx2", "default")))
#else
#define QUANT_CLONES
#endif

static inline int64_t bits64(double w) { int64_t b; memcpy(&b, &w, 8); return b; }
static inline uint64_t ubits64(double w) { uint64_t b; memcpy(&b, &w, 8); return b; }
static inline int32_t bits32(float w) { int32_t b; memcpy(&b, &w, 4); return b; }

/* Every entry point holds Py_buffers; these release them all, and raise ValueError once. */
#define BUFFERS(...) (Py_buffer *[]){__VA_ARGS__}, \
    (int)(sizeof((Py_buffer *[]){__VA_ARGS__}) / sizeof(Py_buffer *))

static void
release_buffers(Py_buffer *const *bufs, int n)
{
    for (int i = 0; i < n; i++)
        PyBuffer_Release(bufs[i]);
}

static PyObject *
fail_with_buffers(Py_buffer *const *bufs, int n, const char *fmt, ...)
{
    va_list ap;
    release_buffers(bufs, n);
    va_start(ap, fmt);
    PyErr_FormatV(PyExc_ValueError, fmt, ap);
    va_end(ap);
    return NULL;
}

/* Returns 1 if any input is NaN or infinite (the caller then reports which), else 0.
 * NEAR (float64 input only): the squarings of a 53-bit mantissa are not exact, so a w within
 * 2**(ROUNDS+3) ulps of a power of two (a code boundary; the rounding error is below
 * 2**(ROUNDS+1) ulps) may sit on the wrong side of it. Such an element, unless x is zero or a
 * power of two (whose squares are exact), gets the marker -128 (never a code) and quant
 * decides it in exact arithmetic (quant/logdomain/kernels.py, resolve_marked). */
#define LOG_ENCODE_BODY(T, BITS, EXP_MASK, SIGN_SHIFT, ROUNDS, NEAR)                        \
    do {                                                                                  \
        int bad = 0;                                                                      \
        const uint64_t band = (uint64_t)1 << ((ROUNDS) + 3), mant = ((uint64_t)1 << 52) - 1; \
        for (Py_ssize_t i = 0; i < n; i++) {                                              \
            T xv = x[i];                                                                  \
            __typeof__(BITS(xv)) xb = BITS(xv);                                           \
            bad |= (xb & EXP_MASK) == EXP_MASK;                                           \
            double w = (double)xv * scale;                                                \
            for (int r = 0; r < ROUNDS; r++) w = w * w;                                   \
            uint64_t wb = ubits64(w), wm = wb & mant, we = wb >> 52;                      \
            int near = NEAR && we != 0 && we != 0x7ff && (wm <= band || wm >= mant - band) \
                && ((uint64_t)xb & mant) != 0;                                            \
            w = w < lo ? lo : w;                                                          \
            w = w > hi ? hi : w;                                                          \
            int32_t m = (int32_t)(ubits64(w) >> 53) + k2;                                 \
            int32_t s = (int32_t)(xb >> SIGN_SHIFT);                                      \
            out[i] = near ? (int8_t)-128 : (int8_t)((m ^ s) - s);                         \
        }                                                                                 \
        return bad;                                                                       \
    } while (0)

#define DEFINE_LOG_ENCODE(NAME, T, BITS, EXP_MASK, SIGN_SHIFT, NEAR)                            \
    static inline int NAME##_r(const T *restrict x, int8_t *restrict out, Py_ssize_t n,    \
                               double scale, const int rounds, double lo, double hi,       \
                               int32_t k2)                                                 \
    {                                                                                     \
        switch (rounds) {                                                                 \
        case 1: LOG_ENCODE_BODY(T, BITS, EXP_MASK, SIGN_SHIFT, 1, NEAR);                        \
        case 2: LOG_ENCODE_BODY(T, BITS, EXP_MASK, SIGN_SHIFT, 2, NEAR);                        \
        case 3: LOG_ENCODE_BODY(T, BITS, EXP_MASK, SIGN_SHIFT, 3, NEAR);                        \
        case 4: LOG_ENCODE_BODY(T, BITS, EXP_MASK, SIGN_SHIFT, 4, NEAR);                        \
        case 5: LOG_ENCODE_BODY(T, BITS, EXP_MASK, SIGN_SHIFT, 5, NEAR);                        \
        case 6: LOG_ENCODE_BODY(T, BITS, EXP_MASK, SIGN_SHIFT, 6, NEAR);                        \
        default: LOG_ENCODE_BODY(T, BITS, EXP_MASK, SIGN_SHIFT, 7, NEAR);                       \
        }                                                                                 \
    }                                                                                     \
    QUANT_CLONES static int NAME(const T *x, int8_t *out, Py_ssize_t n, double scale,     \
                                 int rounds, double lo, double hi, int32_t k2)             \
    {                                                                                     \
        return NAME##_r(x, out, n, scale, rounds, lo, hi, k2);                            \
    }

DEFINE_LOG_ENCODE(log_encode_f32, float, bits32, (int32_t)0x7f800000, 31, 0)
DEFINE_LOG_ENCODE(log_encode_f64, double, bits64, (int64_t)0x7ff0000000000000LL, 63, 1)

static PyObject *
py_log_encode_impl(PyObject *self, PyObject *args)
{
    Py_buffer xin, xout;
    int itemsize, rounds, k2, nthreads, bad = 0;
    double scale, lo, hi;
    (void)self;
    if (!PyArg_ParseTuple(args, "y*w*ididdii", &xin, &xout, &itemsize, &scale, &rounds, &lo,
                          &hi, &k2, &nthreads))
        return NULL;
    if ((itemsize != 4 && itemsize != 8) || rounds < 1 || rounds > 7
        || xin.len % itemsize != 0 || xout.len != xin.len / itemsize)
        return fail_with_buffers(BUFFERS(&xin, &xout),
                                 "log_encode: bad arguments (itemsize %d, rounds %d, %zd input "
                                 "bytes, %zd output bytes)", itemsize, rounds, xin.len, xout.len);
    Py_ssize_t n = xout.len, nchunks = NCHUNKS(n);
    const char *xb = (const char *)xin.buf;
    int8_t *ob = (int8_t *)xout.buf;
    (void)nthreads;
    Py_BEGIN_ALLOW_THREADS
#pragma omp parallel for num_threads(nthreads) schedule(dynamic) reduction(|:bad) \
    if (nthreads > 1 && nchunks > 1)
    for (Py_ssize_t c = 0; c < nchunks; c++) {
        Py_ssize_t i = c * CHUNK, m = CHUNK_LEN(c, n);
        if (itemsize == 4)
            bad |= log_encode_f32((const float *)xb + i, ob + i, m, scale, rounds, lo, hi,
                                  (int32_t)k2);
        else
            bad |= log_encode_f64((const double *)xb + i, ob + i, m, scale, rounds, lo, hi,
                                  (int32_t)k2);
    }
    Py_END_ALLOW_THREADS
    release_buffers(BUFFERS(&xin, &xout));
    return PyBool_FromLong(bad);
}

/* ScaledInt8, float32 per tensor: y = x / scale (one IEEE float32 division), clamped to
 * [lo, hi] = [qmin - zp, qmax - zp] (integers, so clamping before rounding equals clamping
 * after), rounded half to even by the 1.5 * 2**23 trick (exact for |y| < 2**22), plus zp;
 * the low byte of that integer is the int8 or uint8 code. Returns 1 if x holds NaN/inf. */
QUANT_CLONES static int
scaled_encode_f32(const float *restrict x, uint8_t *restrict out, Py_ssize_t n, float scale,
                  float lo, float hi, int32_t zp)
{
    const float magic = 12582912.0f;
    int bad = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        int32_t xb = bits32(x[i]);
        bad |= (xb & 0x7f800000) == 0x7f800000;
        float y = x[i] / scale;
        y = y > lo ? y : lo;            /* NaN -> lo (the call then raises anyway) */
        y = y < hi ? y : hi;
        y = (y + magic) - magic;
        out[i] = (uint8_t)((int32_t)y + zp);
    }
    return bad;
}

static PyObject *
py_scaled_encode_f32(PyObject *self, PyObject *args)
{
    Py_buffer xin, xout;
    float scale, lo, hi;
    int zp, nthreads, bad = 0;
    (void)self;
    if (!PyArg_ParseTuple(args, "y*w*fffii", &xin, &xout, &scale, &lo, &hi, &zp, &nthreads))
        return NULL;
    if (xin.len % 4 != 0 || xout.len != xin.len / 4 || !(lo <= hi) || lo < -512.0f
        || hi > 512.0f)
        return fail_with_buffers(BUFFERS(&xin, &xout),
                                 "scaled_encode_f32: bad arguments (%zd input bytes, %zd output "
                                 "bytes, bounds [%g, %g])", xin.len, xout.len, (double)lo,
                                 (double)hi);
    Py_ssize_t n = xout.len, nchunks = NCHUNKS(n);
    const float *xb = (const float *)xin.buf;
    uint8_t *ob = (uint8_t *)xout.buf;
    (void)nthreads;
    Py_BEGIN_ALLOW_THREADS
#pragma omp parallel for num_threads(nthreads) schedule(dynamic) reduction(|:bad) \
    if (nthreads > 1 && nchunks > 1)
    for (Py_ssize_t c = 0; c < nchunks; c++) {
        Py_ssize_t i = c * CHUNK;
        bad |= scaled_encode_f32(xb + i, ob + i, CHUNK_LEN(c, n), scale, lo, hi, (int32_t)zp);
    }
    Py_END_ALLOW_THREADS
    release_buffers(BUFFERS(&xin, &xout));
    return PyBool_FromLong(bad);
}

#define DEFINE_BYTE_LOOKUP(NAME, T)                                                         \
    QUANT_CLONES static void NAME(const uint8_t *restrict c, const T *restrict table,      \
                                  T *restrict out, Py_ssize_t n)                           \
    {                                                                                     \
        for (Py_ssize_t i = 0; i < n; i++) out[i] = table[c[i]];                          \
    }

DEFINE_BYTE_LOOKUP(byte_lookup_4, uint32_t)
DEFINE_BYTE_LOOKUP(byte_lookup_8, uint64_t)

static PyObject *
py_byte_lookup(PyObject *self, PyObject *args)
{
    Py_buffer codes, table, out;
    int nthreads;
    (void)self;
    if (!PyArg_ParseTuple(args, "y*y*w*i", &codes, &table, &out, &nthreads))
        return NULL;
    Py_ssize_t n = codes.len, item = table.len / 256;
    if ((item != 4 && item != 8) || table.len != 256 * item || out.len != n * item)
        return fail_with_buffers(BUFFERS(&codes, &table, &out),
                                 "byte_lookup: need a 256-entry table of 4- or 8-byte items and "
                                 "an output of one item per code (%zd codes, %zd table bytes, "
                                 "%zd output bytes)", n, table.len, out.len);
    Py_ssize_t nchunks = NCHUNKS(n);
    const uint8_t *cb = (const uint8_t *)codes.buf;
    (void)nthreads;
    Py_BEGIN_ALLOW_THREADS
#pragma omp parallel for num_threads(nthreads) schedule(dynamic) if (nthreads > 1 && nchunks > 1)
    for (Py_ssize_t c = 0; c < nchunks; c++) {
        Py_ssize_t i = c * CHUNK, m = CHUNK_LEN(c, n);
        if (item == 4)
            byte_lookup_4(cb + i, (const uint32_t *)table.buf, (uint32_t *)out.buf + i, m);
        else
            byte_lookup_8(cb + i, (const uint64_t *)table.buf, (uint64_t *)out.buf + i, m);
    }
    Py_END_ALLOW_THREADS
    release_buffers(BUFFERS(&codes, &table, &out));
    Py_RETURN_NONE;
}

/* The integer pipeline after its matmul (quant/integer/linear.py: wide_product,
 * requantize_ties_up, gaps, then IntegerSoftmax.from_gaps), one row at a time, in the same
 * int64 operations:
 *   acc = (planes == 2 ? lo + 2 * hi : acc)     from fp32 carriers or int32 accumulators
 *   z   = (acc * mult + off) >> shift           per class, arithmetic shift (floor)
 *   d   = min(max(z) - z, 255);  e = table[d];  s = sum(e)
 *   r   = (out_max << k) / s                    (s > 0: the row max has d = 0)
 *   p   = (e * r + half) >> k                   stored as uint8 or uint16 */
/* Signed int64 arithmetic is done in uint64 and converted back, so it wraps exactly as
 * torch's int64 tensors do instead of being undefined; the pipeline's proofs rule wrapping out
 * anyway. Returns 0, or flags: 1 (a row's table sum is not positive), 2 (out of memory),
 * 4 (a carrier value is NaN or beyond +-2**31, so not an accumulator). */
static inline int64_t wrap_mul_add(int64_t a, int64_t b, int64_t c)
{
    return (int64_t)((uint64_t)a * (uint64_t)b + (uint64_t)c);
}

static int
softmax_head_rows(const void *carrier, int is_float, int planes, Py_ssize_t r0, Py_ssize_t r1,
                  Py_ssize_t m, const int64_t *mult, const int64_t *off, const int64_t *shift,
                  const int64_t *table, int k, int64_t out_max, void *out, int out_item)
{
    int64_t *z = (int64_t *)malloc((size_t)m * sizeof(int64_t));
    if (!z)
        return 2;
    const int64_t num = out_max << k, half = (int64_t)1 << (k - 1);
    Py_ssize_t width = planes * m;
    int status = 0;
    for (Py_ssize_t row = r0; row < r1 && !status; row++) {
        int64_t mx = INT64_MIN;
        uint64_t s = 0;
        for (Py_ssize_t j = 0; j < m; j++) {
            int64_t acc;
            if (is_float) {
                const float *c = (const float *)carrier + row * width;
                float hi = c[j], lo = planes == 2 ? c[m + j] : 0.0f;
                if (!(hi > -2147483648.0f && hi < 2147483648.0f && lo > -2147483648.0f
                      && lo < 2147483648.0f)) {
                    status = 4;
                    break;
                }
                acc = planes == 2 ? (int64_t)lo + 2 * (int64_t)hi : (int64_t)hi;
            } else {
                const int32_t *c = (const int32_t *)carrier + row * width;
                acc = planes == 2 ? (int64_t)c[m + j] + 2 * (int64_t)c[j] : (int64_t)c[j];
            }
            z[j] = wrap_mul_add(acc, mult[j], off[j]) >> shift[j];
            mx = z[j] > mx ? z[j] : mx;
        }
        if (status)
            break;
        for (Py_ssize_t j = 0; j < m; j++) {
            uint64_t d = (uint64_t)mx - (uint64_t)z[j];     /* mx >= z[j]: exact, >= 0 */
            z[j] = table[d < 255 ? d : 255];
            s += (uint64_t)z[j];
        }
        if ((int64_t)s <= 0) {          /* a table without a positive entry at d = 0 */
            status = 1;
            break;
        }
        int64_t r = num / (int64_t)s;
        for (Py_ssize_t j = 0; j < m; j++) {
            int64_t p = wrap_mul_add(z[j], r, half) >> k;
            if (out_item == 1)
                ((uint8_t *)out)[row * m + j] = (uint8_t)p;
            else
                ((uint16_t *)out)[row * m + j] = (uint16_t)p;
        }
    }
    free(z);
    return status;
}

static PyObject *
py_softmax_head(PyObject *self, PyObject *args)
{
    Py_buffer car, mult, off, shift, table, out;
    int is_float, planes, k, nthreads;
    long long out_max;
    (void)self;
    if (!PyArg_ParseTuple(args, "y*iiy*y*y*y*iLw*i", &car, &is_float, &planes, &mult, &off,
                          &shift, &table, &k, &out_max, &out, &nthreads))
        return NULL;
    Py_ssize_t m = mult.len / 8, width = planes * m;
    Py_ssize_t rows = width > 0 ? car.len / 4 / width : 0;
    Py_ssize_t out_item = rows * m > 0 ? out.len / (rows * m) : 1;
    const char *why = NULL;
    if (planes != 1 && planes != 2) why = "planes must be 1 or 2";
    else if (m < 1 || mult.len != 8 * m || off.len != 8 * m || shift.len != 8 * m)
        why = "per-class parameters must be int64 of one length";
    else if (table.len != 8 * 256) why = "the table must hold 256 int64 entries";
    else if (car.len != 4 * rows * width) why = "carrier size is not rows x planes x classes";
    else if ((out_item != 1 && out_item != 2) || out.len != out_item * rows * m)
        why = "output must be uint8 or uint16, rows x classes";
    else if (out_max < 1 || out_max > 65535 || k < 1 || k > 46)
        why = "out_max must lie in 1..65535 and k in 1..46 (out_max << k below 2**62)";
    else {
        for (Py_ssize_t j = 0; j < m; j++) {
            int64_t sh = ((const int64_t *)shift.buf)[j];
            if (sh < 1 || sh > 62) { why = "shifts must lie in 1..62"; break; }
        }
    }
    if (why)
        return fail_with_buffers(BUFFERS(&car, &mult, &off, &shift, &table, &out),
                                 "softmax_head: %s", why);
    const Py_ssize_t block = 256;
    Py_ssize_t nblocks = (rows + block - 1) / block;
    int bad = 0;
    (void)nthreads;
    Py_BEGIN_ALLOW_THREADS
#pragma omp parallel for num_threads(nthreads) schedule(static) reduction(|:bad) \
    if (nthreads > 1 && nblocks > 1)
    for (Py_ssize_t b = 0; b < nblocks; b++) {
        Py_ssize_t r1 = (b + 1) * block < rows ? (b + 1) * block : rows;
        bad |= softmax_head_rows(car.buf, is_float, planes, b * block, r1, m, mult.buf,
                                 off.buf, shift.buf, table.buf, k, (int64_t)out_max, out.buf,
                                 (int)out_item);
    }
    Py_END_ALLOW_THREADS
    release_buffers(BUFFERS(&car, &mult, &off, &shift, &table, &out));
    if (bad & 2)
        return PyErr_NoMemory();
    if (bad) {
        PyErr_SetString(PyExc_ValueError, (bad & 1)
                        ? "softmax_head: a row's sum of table entries is not positive "
                          "(table[0] must be > 0)"
                        : "softmax_head: the carrier holds NaN or a value beyond +-2**31, "
                          "not an accumulator");
        return NULL;
    }
    Py_RETURN_NONE;
}


static PyMethodDef methods[] = {
    {"log_encode", py_log_encode_impl, METH_VARARGS,
     "log_encode(x, out, itemsize, scale, rounds, lo, hi, k2, nthreads) -> bool\n\n"
     "Writes LogInt8 codes of the float32 (itemsize 4) or float64 (itemsize 8) buffer x into\n"
     "the int8 buffer out; returns True if x holds NaN or infinity. Releases the GIL."},
    {"scaled_encode_f32", py_scaled_encode_f32, METH_VARARGS,
     "scaled_encode_f32(x, out, scale, lo, hi, zp, nthreads) -> bool\n\n"
     "ScaledInt8 codes (low bytes of clamp(round_half_even(x / scale), lo, hi) + zp) of a\n"
     "float32 buffer into a byte buffer; True if x holds NaN or infinity. Releases the GIL."},
    {"byte_lookup", py_byte_lookup, METH_VARARGS,
     "byte_lookup(codes, table, out, nthreads) -> None\n\n"
     "out[i] = table[codes[i]] for a byte buffer of codes and a 256-entry table of 4- or\n"
     "8-byte items (copied bit for bit). Releases the GIL."},
    {"softmax_head", py_softmax_head, METH_VARARGS,
     "softmax_head(carrier, is_float, planes, mult, off, shift, table, k, out_max, out,\n"
     "             nthreads) -> None\n\n"
     "The integer pipeline after its matmul: requantize, row max, table exp, reciprocal and\n"
     "probability codes, row by row (see quant/integer/linear.py). Releases the GIL."},
    OPENMP_LIBRARY_METHOD,
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "quant.native._native",
    "Fused native loops behind quant (see quant/native/__init__.py).", -1, methods,
    NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC
PyInit__native(void)
{
    return PyModule_Create(&module);
}
