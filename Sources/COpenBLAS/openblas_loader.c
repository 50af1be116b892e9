#include "shim.h"

#include <dlfcn.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>

static void *library;
static atomic_int loaded;
static pthread_once_t once = PTHREAD_ONCE_INIT;

static __typeof__(&cblas_sgemm) sgemm;
static __typeof__(&cblas_sgemv) sgemv;
static __typeof__(&openblas_get_corename) get_corename;
static __typeof__(&openblas_get_config) get_config;
static __typeof__(&openblas_get_parallel) get_parallel;

static void fail(const char *what) {
    fprintf(stderr, "error: cannot use OpenBLAS (libopenblas.so.0): %s. Install it (Debian: apt-get install libopenblas0-pthread) and run the command again.\n", what);
    fflush(stderr);
    exit(69);  // EX_UNAVAILABLE
}

static void *need(const char *name) {
    void *symbol = dlsym(library, name);
    if (!symbol) fail(name);
    return symbol;
}

static void load(void) {
    // RTLD_LOCAL: its symbols stay its own, so nothing else in the process binds to them by accident.
    library = dlopen("libopenblas.so.0", RTLD_NOW | RTLD_LOCAL);
    if (!library) {
        const char *why = dlerror();
        fail(why ? why : "not found");
    }
    sgemm = (__typeof__(sgemm))need("cblas_sgemm");
    sgemv = (__typeof__(sgemv))need("cblas_sgemv");
    get_corename = (__typeof__(get_corename))need("openblas_get_corename");
    get_config = (__typeof__(get_config))need("openblas_get_config");
    get_parallel = (__typeof__(get_parallel))need("openblas_get_parallel");
    // One thread, and no idle workers: this program's own pool splits large products (Sources/Tensor/Parallel.swift).
    // In this order: OpenBLAS 0.3.21 starts its pool again on any later openblas_set_num_threads call. The shutdown
    // exists only in pthreads builds.
    ((__typeof__(&openblas_set_num_threads))need("openblas_set_num_threads"))(1);
    int (*shutdown)(void) = (int (*)(void))dlsym(library, "blas_thread_shutdown_");
    if (shutdown) shutdown();
    atomic_store(&loaded, 1);
}

static inline void ready(void) { pthread_once(&once, load); }

void sspa_cblas_sgemm(const enum CBLAS_ORDER order, const enum CBLAS_TRANSPOSE transA, const enum CBLAS_TRANSPOSE transB,
                      const blasint m, const blasint n, const blasint k, const float alpha, const float *a, const blasint lda,
                      const float *b, const blasint ldb, const float beta, float *c, const blasint ldc) {
    ready();
    sgemm(order, transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

void sspa_cblas_sgemv(const enum CBLAS_ORDER order, const enum CBLAS_TRANSPOSE trans, const blasint m, const blasint n,
                      const float alpha, const float *a, const blasint lda, const float *x, const blasint incx,
                      const float beta, float *y, const blasint incy) {
    ready();
    sgemv(order, trans, m, n, alpha, a, lda, x, incx, beta, y, incy);
}

const char *sspa_openblas_get_corename(void) { ready(); return get_corename(); }
const char *sspa_openblas_get_config(void) { ready(); return get_config(); }
int sspa_openblas_get_parallel(void) { ready(); return get_parallel(); }
void sspa_openblas_load(void) { ready(); }
int sspa_openblas_loaded(void) { return atomic_load(&loaded); }
