/* numfmt/openmp_library.h: the `openmp_library()` function every extension of this project
 * exports (numfmt._native, quant.native._native, quant.native._int8_head), so that its Python
 * face can check with numfmt.threads.uses_torch_openmp that its loops run on torch's OpenMP
 * team. Include it after <Python.h>, with _GNU_SOURCE defined before any header (dladdr). */
#ifndef NUMFMT_OPENMP_LIBRARY_H
#define NUMFMT_OPENMP_LIBRARY_H

#ifdef _OPENMP
#include <dlfcn.h>
#include <omp.h>
#endif

/* Path of the shared library the OpenMP symbols resolve to, or None without OpenMP. */
static PyObject *py_openmp_library(PyObject *self, PyObject *args)
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

/* Its entry in a PyMethodDef table. */
#define OPENMP_LIBRARY_METHOD                                                               \
    {"openmp_library", py_openmp_library, METH_NOARGS,                                      \
     "openmp_library() -> str | None\n\n"                                                   \
     "Path of the OpenMP runtime these loops use (None: built without OpenMP)."}

#endif
