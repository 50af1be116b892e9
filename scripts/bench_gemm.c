/*
 * bench_gemm.c -- OpenBLAS cblas_sgemm vs oneDNN dnnl_sgemm on the matrix
 * products of a CLIP ViT-B/16 (and a few SSPA-like shapes): the measurement
 * behind the README's choice of matrix-product backend (issue 13, section 1).
 * A benchmark, never part of the tests or the build.
 *
 * Build (no -march=native: both libraries dispatch at run time); oneDNN comes
 * from Debian (apt-get install libdnnl-dev), which the project itself does not need:
 *   gcc -O2 -o /tmp/gemm_bench scripts/bench_gemm.c -lopenblas -ldnnl -lgomp -lm
 *
 * Usage:
 *   ./gemm_bench info                  library versions, kernels, ISA
 *   ./gemm_bench check                 run every shape once with BOTH
 *                                      libraries, compare each with a float64
 *                                      reference and with each other
 *   ./gemm_bench openblas NTHREADS [REPS]
 *   ./gemm_bench dnnl     NTHREADS [REPS]
 *
 * One library per timed process, so that the spinning worker threads of one
 * library (OpenBLAS pthreads, libgomp) never compete with the other one.
 * Threads: OpenBLAS via openblas_set_num_threads(); oneDNN (Debian builds it
 * with DNNL_CPU_RUNTIME=OMP) via OMP_NUM_THREADS, which must be set in the
 * environment before the process starts (checked with omp_get_max_threads()).
 * OPENBLAS_CORETYPE=Haswell etc. is honoured by OpenBLAS's DYNAMIC_ARCH build.
 *
 * For each shape, C = A*B (B stored [K,N], no transposes) and C = A*B^T
 * (B stored [N,K], transb='T') are timed: two warm-up calls, then the median of
 * REPS (default 11, at least 7) timed repetitions; tiny shapes batch several
 * calls per repetition so that one repetition lasts >= 20 ms.  Reported as
 * GFLOP/s = 2*M*N*K / seconds-per-call.  Afterwards a sampled subset of C is
 * compared with a float64 reference:
 *   nrm = max|c - ref| / max|ref|            (normwise, over the sample)
 *   cw  = max |c - ref| / sum_k |a_ik b_kj|  (componentwise, rounding-scaled)
 * and the run fails (exit 1) if nrm > 1e-4.
 */
#define _GNU_SOURCE
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/resource.h>

#include <cblas.h>
#include <dnnl.h>

int omp_get_max_threads(void); /* libgomp, which libdnnl already pulls in */

typedef struct {
    const char *name;
    int M, K, N;
} shape_t;

static const shape_t shapes[] = {
    {"vis_mlp_up", 6304, 768, 3072},
    {"vis_mlp_down", 6304, 3072, 768},
    {"vis_qkv", 6304, 768, 2304},
    {"vis_attn_out", 6304, 768, 768},
    {"txt_mlp_up", 2048, 512, 2048},
    {"txt_qkv", 2048, 512, 1536},
    {"small", 64, 512, 512},
    {"sspa_proj", 6272, 512, 512},
    {"sspa_head", 32, 512, 20},
};
#define NSHAPES ((int)(sizeof shapes / sizeof shapes[0]))

#define NSAMPLES 512
#define TOL 1e-4

enum { LIB_OPENBLAS = 0, LIB_DNNL = 1 };
static const char *libname[] = {"openblas", "dnnl"};

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + 1e-9 * ts.tv_nsec;
}

static double cpu_seconds(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_utime.tv_sec + 1e-6 * ru.ru_utime.tv_usec + ru.ru_stime.tv_sec +
           1e-6 * ru.ru_stime.tv_usec;
}

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;
static uint64_t rng_next(void) { /* xorshift64* */
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 0x2545F4914F6CDD1Dull;
}
static float rng_float(void) { /* uniform in [-1, 1) */
    return (float)((rng_next() >> 40) * (1.0 / 16777216.0) * 2.0 - 1.0);
}

static float *alloc_floats(size_t n) {
    void *p = NULL;
    if (posix_memalign(&p, 64, n * sizeof(float) + 64) != 0) {
        fprintf(stderr, "out of memory (%zu floats)\n", n);
        exit(2);
    }
    return p;
}

/* C = A * op(B); A [M,K]; trans_b==0: B [K,N]; trans_b==1: B [N,K]. */
static void run_gemm(int lib, int trans_b, int M, int N, int K, const float *A,
                     const float *B, float *C) {
    int ldb = trans_b ? K : N;
    if (lib == LIB_OPENBLAS) {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, trans_b ? CblasTrans : CblasNoTrans,
                    M, N, K, 1.0f, A, K, B, ldb, 0.0f, C, N);
    } else {
        dnnl_status_t st = dnnl_sgemm('N', trans_b ? 'T' : 'N', M, N, K, 1.0f, A, K,
                                      B, ldb, 0.0f, C, N);
        if (st != dnnl_success) {
            fprintf(stderr, "dnnl_sgemm failed: status %d\n", (int)st);
            exit(2);
        }
    }
}

typedef struct {
    int i[NSAMPLES], j[NSAMPLES];
    double ref[NSAMPLES], absdot[NSAMPLES], maxref;
} sample_t;

static void make_reference(sample_t *s, int trans_b, int M, int N, int K,
                           const float *A, const float *B) {
    s->maxref = 0;
    for (int t = 0; t < NSAMPLES; t++) {
        int i, j;
        if (t < 4) { /* the four corners, then random entries */
            i = (t & 1) ? M - 1 : 0;
            j = (t & 2) ? N - 1 : 0;
        } else {
            i = (int)(rng_next() % (uint64_t)M);
            j = (int)(rng_next() % (uint64_t)N);
        }
        double acc = 0, aacc = 0;
        for (int k = 0; k < K; k++) {
            double a = A[(size_t)i * K + k];
            double b = trans_b ? B[(size_t)j * K + k] : B[(size_t)k * N + j];
            acc += a * b;
            aacc += fabs(a * b);
        }
        s->i[t] = i;
        s->j[t] = j;
        s->ref[t] = acc;
        s->absdot[t] = aacc;
        if (fabs(acc) > s->maxref) s->maxref = fabs(acc);
    }
}

static void compare(const sample_t *s, int N, const float *C, double *nrm, double *cw) {
    double maxerr = 0, maxcw = 0;
    for (int t = 0; t < NSAMPLES; t++) {
        double e = fabs((double)C[(size_t)s->i[t] * N + s->j[t]] - s->ref[t]);
        if (e > maxerr) maxerr = e;
        if (s->absdot[t] > 0 && e / s->absdot[t] > maxcw) maxcw = e / s->absdot[t];
    }
    *nrm = maxerr / (s->maxref > 0 ? s->maxref : 1);
    *cw = maxcw;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static void print_info(void) {
    const dnnl_version_t *v = dnnl_version();
    dnnl_cpu_isa_t isa = dnnl_get_effective_cpu_isa();
    const char *isaname = "?";
    switch (isa) {
    case dnnl_cpu_isa_all: isaname = "all"; break;
    case dnnl_cpu_isa_sse41: isaname = "sse41"; break;
    case dnnl_cpu_isa_avx: isaname = "avx"; break;
    case dnnl_cpu_isa_avx2: isaname = "avx2"; break;
    case dnnl_cpu_isa_avx2_vnni: isaname = "avx2_vnni"; break;
    case dnnl_cpu_isa_avx512_core: isaname = "avx512_core"; break;
    case dnnl_cpu_isa_avx512_core_vnni: isaname = "avx512_core_vnni"; break;
    case dnnl_cpu_isa_avx512_core_bf16: isaname = "avx512_core_bf16"; break;
    case dnnl_cpu_isa_avx512_core_amx: isaname = "avx512_core_amx"; break;
    default: break;
    }
    printf("# openblas: config=\"%s\" core=%s threads=%d procs=%d parallel=%d\n",
           openblas_get_config(), openblas_get_corename(), openblas_get_num_threads(),
           openblas_get_num_procs(), openblas_get_parallel());
    printf("# dnnl: %d.%d.%d (hash %s) cpu_runtime=%s effective_isa=%s(0x%x) "
           "omp_max_threads=%d\n",
           v->major, v->minor, v->patch, v->hash,
           v->cpu_runtime == DNNL_RUNTIME_OMP ? "OpenMP" : "other", isaname, (int)isa,
           omp_get_max_threads());
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: %s info | check | openblas|dnnl NTHREADS [REPS]\n",
                argv[0]);
        return 2;
    }
    int mode_check = strcmp(argv[1], "check") == 0;
    if (strcmp(argv[1], "info") == 0) {
        print_info();
        return 0;
    }
    int lib = -1, nthreads = 1, reps = 11;
    if (!mode_check) {
        if (strcmp(argv[1], "openblas") == 0) lib = LIB_OPENBLAS;
        else if (strcmp(argv[1], "dnnl") == 0) lib = LIB_DNNL;
        else {
            fprintf(stderr, "unknown mode %s\n", argv[1]);
            return 2;
        }
        if (argc < 3) {
            fprintf(stderr, "need NTHREADS\n");
            return 2;
        }
        nthreads = atoi(argv[2]);
        if (argc > 3) reps = atoi(argv[3]);
        if (reps < 7) reps = 7;
        if (lib == LIB_OPENBLAS) {
            openblas_set_num_threads(nthreads);
        } else if (omp_get_max_threads() != nthreads) {
            fprintf(stderr, "OMP_NUM_THREADS gives %d threads, asked for %d: "
                            "set OMP_NUM_THREADS=%d in the environment\n",
                    omp_get_max_threads(), nthreads, nthreads);
            return 2;
        }
    }
    print_info();

    size_t maxA = 0, maxB = 0, maxC = 0;
    for (int s = 0; s < NSHAPES; s++) {
        size_t a = (size_t)shapes[s].M * shapes[s].K, b = (size_t)shapes[s].K * shapes[s].N,
               c = (size_t)shapes[s].M * shapes[s].N;
        if (a > maxA) maxA = a;
        if (b > maxB) maxB = b;
        if (c > maxC) maxC = c;
    }
    float *A = alloc_floats(maxA), *B = alloc_floats(maxB), *Bt = alloc_floats(maxB);
    float *C = alloc_floats(maxC), *C2 = alloc_floats(maxC);
    static sample_t smp;
    int fail = 0;
    double worst_nrm = 0, worst_cw = 0, worst_x = 0;

    if (mode_check)
        printf("%-13s %5s %5s %5s %2s  %-10s %-10s %-10s %-10s %-10s\n", "shape", "M", "K",
               "N", "op", "obl_nrm", "obl_cw", "dnnl_nrm", "dnnl_cw", "obl_vs_dnnl");
    else
        printf("%-13s %5s %5s %5s %2s %-8s %3s %9s %9s %9s %5s %-9s %-9s\n", "shape", "M",
               "K", "N", "op", "lib", "thr", "GFLOP/s", "med_ms", "min_ms", "batch",
               "err_nrm", "err_cw");

    double t_wall0 = now(), t_cpu0 = cpu_seconds();
    for (int s = 0; s < NSHAPES; s++) {
        const int M = shapes[s].M, K = shapes[s].K, N = shapes[s].N;
        /* Same seed per shape for every process, so runs are comparable. */
        rng_state = 0x9E3779B97F4A7C15ull ^ (uint64_t)(s + 1) * 0xD1B54A32D192ED03ull;
        for (size_t x = 0; x < (size_t)M * K; x++) A[x] = rng_float();
        for (size_t x = 0; x < (size_t)K * N; x++) B[x] = rng_float();
        for (int k = 0; k < K; k++) /* Bt = B^T, so both products are equal */
            for (int n = 0; n < N; n++) Bt[(size_t)n * K + k] = B[(size_t)k * N + n];
        for (int tb = 0; tb < 2; tb++) {
            const float *Bp = tb ? Bt : B;
            make_reference(&smp, tb, M, N, K, A, Bp);
            double flops = 2.0 * M * N * K;
            if (mode_check) {
                double n0, c0, n1, c1, x = 0, xm = 0;
                run_gemm(LIB_OPENBLAS, tb, M, N, K, A, Bp, C);
                run_gemm(LIB_DNNL, tb, M, N, K, A, Bp, C2);
                compare(&smp, N, C, &n0, &c0);
                compare(&smp, N, C2, &n1, &c1);
                for (size_t e = 0; e < (size_t)M * N; e++) { /* full matrices */
                    double d = fabs((double)C[e] - C2[e]);
                    if (d > x) x = d;
                    if (fabs(C[e]) > xm) xm = fabs(C[e]);
                }
                x /= xm;
                printf("%-13s %5d %5d %5d %2s  %-10.3g %-10.3g %-10.3g %-10.3g %-10.3g\n",
                       shapes[s].name, M, K, N, tb ? "NT" : "NN", n0, c0, n1, c1, x);
                if (n0 > TOL || n1 > TOL || x > TOL) fail = 1;
                if (n0 > worst_nrm) worst_nrm = n0;
                if (n1 > worst_nrm) worst_nrm = n1;
                if (c0 > worst_cw) worst_cw = c0;
                if (c1 > worst_cw) worst_cw = c1;
                if (x > worst_x) worst_x = x;
                fflush(stdout);
                continue;
            }
            /* warm-up: the first call includes JIT code generation and buffer
             * set-up inside the libraries, so time the second call to choose
             * the batch size */
            run_gemm(lib, tb, M, N, K, A, Bp, C);
            double t0 = now();
            run_gemm(lib, tb, M, N, K, A, Bp, C);
            double t1 = now() - t0;
            int batch = 1;
            if (t1 < 0.02) {
                batch = (int)(0.02 / (t1 > 1e-7 ? t1 : 1e-7)) + 1;
                if (batch > 100000) batch = 100000;
                for (int b = 0; b < batch; b++) run_gemm(lib, tb, M, N, K, A, Bp, C);
            }
            double times[256];
            int nr = reps > 256 ? 256 : reps;
            for (int r = 0; r < nr; r++) {
                t0 = now();
                for (int b = 0; b < batch; b++) run_gemm(lib, tb, M, N, K, A, Bp, C);
                times[r] = (now() - t0) / batch;
            }
            qsort(times, nr, sizeof(double), cmp_double);
            double med = (nr & 1) ? times[nr / 2] : 0.5 * (times[nr / 2 - 1] + times[nr / 2]);
            double nrm, cw;
            compare(&smp, N, C, &nrm, &cw);
            if (nrm > TOL) fail = 1;
            if (nrm > worst_nrm) worst_nrm = nrm;
            if (cw > worst_cw) worst_cw = cw;
            printf("%-13s %5d %5d %5d %2s %-8s %3d %9.2f %9.3f %9.3f %5d %-9.3g %-9.3g\n",
                   shapes[s].name, M, K, N, tb ? "NT" : "NN", libname[lib], nthreads,
                   flops / med / 1e9, med * 1e3, times[0] * 1e3, batch, nrm, cw);
            fflush(stdout);
        }
    }
    double wall = now() - t_wall0, cpu = cpu_seconds() - t_cpu0;
    printf("# wall %.1f s, cpu %.1f s (%.2f cores busy on average)\n", wall, cpu, cpu / wall);
    if (mode_check)
        printf("# max normwise err %.3g, max componentwise err %.3g, max |obl-dnnl|/max|C| "
               "%.3g -> %s\n",
               worst_nrm, worst_cw, worst_x, fail ? "FAIL" : "OK (tol 1e-4)");
    else
        printf("# max normwise err %.3g, max componentwise err %.3g -> %s\n", worst_nrm,
               worst_cw, fail ? "FAIL" : "OK (tol 1e-4)");
    free(A); free(B); free(Bt); free(C); free(C2);
    return fail;
}
