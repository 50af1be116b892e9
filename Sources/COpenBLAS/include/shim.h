#include <cblas.h>

// OpenBLAS is loaded on first use (dlopen), not linked: a command that multiplies no matrix (`build`, `show`,
// `export`…) then neither relocates its sixteen thousand symbols nor starts its threads at every start. The cblas.h
// declarations above give the types and constants; the calls go through these, which load the library the first
// time (an error naming the package to install, and exit 69, when it is missing).

void sspa_cblas_sgemm(const enum CBLAS_ORDER order, const enum CBLAS_TRANSPOSE transA, const enum CBLAS_TRANSPOSE transB,
                      const blasint m, const blasint n, const blasint k, const float alpha, const float *a, const blasint lda,
                      const float *b, const blasint ldb, const float beta, float *c, const blasint ldc);
void sspa_cblas_sgemv(const enum CBLAS_ORDER order, const enum CBLAS_TRANSPOSE trans, const blasint m, const blasint n,
                      const float alpha, const float *a, const blasint lda, const float *x, const blasint incx,
                      const float beta, float *y, const blasint incy);
const char *sspa_openblas_get_corename(void);
const char *sspa_openblas_get_config(void);
int sspa_openblas_get_parallel(void);
/// Loads the library now, if it is not loaded yet. Loading makes it single-threaded and ends the worker threads its
/// pthreads build starts (`BLASRuntime.stopIdleWorkers` says why).
void sspa_openblas_load(void);
/// Whether the library has been loaded (never loads it).
int sspa_openblas_loaded(void);

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#endif

/// What the CPU and the operating system together support, for choosing OpenBLAS's kernel: bit 0 AVX2, bit 1 FMA,
/// bit 2 AVX-512 F, bit 3 AVX-512 BW, bit 4 AVX-512 DQ, bit 5 AVX-512 VL. A bit is set only when cpuid reports the
/// instructions AND XGETBV shows the OS saves the registers they use (YMM for AVX2/FMA; opmask, ZMM_Hi256 and
/// Hi16_ZMM for AVX-512): a CPU can have the instructions while the kernel leaves the state disabled.
static inline unsigned int sspa_cpu_vector_features(void) {
#if defined(__x86_64__) || defined(__i386__)
    unsigned int eax = 0, ebx = 0, ecx = 0, edx = 0;
    if (!__get_cpuid(1, &eax, &ebx, &ecx, &edx)) return 0;
    const int osxsave = (ecx >> 27) & 1, avx = (ecx >> 28) & 1, fma = (ecx >> 12) & 1;
    if (!osxsave || !avx) return 0;
    unsigned int xcr0_lo = 0, xcr0_hi = 0;
    __asm__ volatile("xgetbv" : "=a"(xcr0_lo), "=d"(xcr0_hi) : "c"(0));
    const int ymm_state = (xcr0_lo & 0x6) == 0x6;           /* SSE and AVX (YMM upper halves) */
    const int zmm_state = (xcr0_lo & 0xE6) == 0xE6;         /* plus opmask, ZMM_Hi256, Hi16_ZMM */
    if (!ymm_state) return 0;
    if (__get_cpuid_max(0, 0) < 7) return 0;
    __cpuid_count(7, 0, eax, ebx, ecx, edx);
    unsigned int features = 0;
    if ((ebx >> 5) & 1) features |= 1u;                     /* AVX2 */
    if (fma) features |= 2u;                                /* FMA */
    if (zmm_state) {
        if ((ebx >> 16) & 1) features |= 4u;                /* AVX-512 F */
        if ((ebx >> 30) & 1) features |= 8u;                /* AVX-512 BW */
        if ((ebx >> 17) & 1) features |= 16u;               /* AVX-512 DQ */
        if ((ebx >> 31) & 1) features |= 32u;               /* AVX-512 VL */
    }
    return features;
#else
    return 0;
#endif
}
