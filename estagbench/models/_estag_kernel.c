/* Fused CPU kernel for single-channel ESTAG (Wu et al., NeurIPS 2023, Eq. 3-13).
 *
 * One call runs the whole forward pass of a batch, or the whole backward pass
 * (parameter gradients, given dL/d(prediction)).  The loop is over samples: every
 * sample's T frames, N nodes and E edges are small enough to stay in the L1/L2 cache,
 * so each sample runs its forward pass into a private workspace and, for the
 * gradient, immediately back-propagates through it (the forward is recomputed in
 * the backward call instead of being stored between the two).  A batch is cut into
 * fixed chunks of samples with one gradient accumulator each, summed in chunk order,
 * so the numbers depend neither on the number of threads nor on timing.
 *
 * The maths is exactly that of estagbench/models/estag.py (the PyTorch reference,
 * whose docstrings cite the equations: EDFT Eq. 3-5, ESM Eq. 6-9, ETM Eq. 10-12,
 * pooling Eq. 13); tests compare the two in float64 to 1e-12.
 * Scope: one position channel, SiLU, EDFT on (with or without w_k), paper amplitude,
 * equivariant pooling, causal / full / no attention, any L, T, N, E, F; the hidden
 * width H (HID) is a power of two fixed at compile time.
 *
 * Layouts: weights are PyTorch's (out, in) row-major.  Inside a sample, node
 * tensors are [n][t][.], edge tensors [e][t][.], positions [n][t][3].
 *
 * Build: cc -O3 -march=native -fno-math-errno -fno-trapping-math -shared -fPIC -pthread -DHID=16 [-DUSE_DOUBLE]
 * (no -ffast-math: on GCC < 13 it would switch the whole process to flush-to-zero, and it would
 * let the compiler reorder sums).
 *
 * Floating-point environment: the kernel's own speed and numbers must not depend on the
 * caller's.  Without flush-to-zero, float32 intermediates that underflow (attention weights,
 * exp of large negatives, tiny gradients) take a microcode assist each, and a step ran ~3x slower.
 * So on x86 every thread that runs kernel code (the caller's and each one started here) sets
 * flush-to-zero and denormals-are-zero in its MXCSR on entry and restores the caller's MXCSR on
 * exit (FP_ENTER / FP_LEAVE); the caller's environment is left as it was.  Other architectures:
 * the environment is not touched, so numbers there are IEEE gradual underflow and the speed is
 * whatever the CPU's denormal handling gives (AArch64 cores mostly handle them in hardware).
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>

#if defined(__x86_64__) || defined(__i386__) || defined(_M_X64)
#include <xmmintrin.h>
/* MXCSR bit 15 = flush-to-zero (FTZ), bit 6 = denormals-are-zero (DAZ) */
#define FP_ENTER unsigned int fp_saved_csr_ = _mm_getcsr(); _mm_setcsr(fp_saved_csr_ | 0x8040u)
#define FP_LEAVE _mm_setcsr(fp_saved_csr_)
#define FP_FLUSHES 1
#else
#define FP_ENTER do { } while (0)
#define FP_LEAVE do { } while (0)
#define FP_FLUSHES 0
#endif

#ifndef HID
#define HID 16
#endif
#define H HID

#ifdef USE_DOUBLE
typedef double real;
static inline real r_exp(real x) { return exp(x); }
static inline real r_sqrt(real x) { return sqrt(x); }
#define TINY_R2 1e-24
#else
typedef float real;
/* exp for float: Cody-Waite range reduction and the Cephes polynomial (about 1 ulp);
 * written so that the compiler vectorises loops that call it. */
static inline __attribute__((always_inline)) float r_exp(float x) {
    x = x < -87.0f ? -87.0f : x; /* two selects (not nested): both become vector min/max */
    x = x > 88.0f ? 88.0f : x;
    float n = floorf(x * 1.44269504088896341f + 0.5f);
    float r = x - n * 0.693359375f;
    r = r - n * -2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * (r * r) + r + 1.0f;
    const int32_t bits = ((int32_t)n + 127) << 23; /* 2^n as a float's bit pattern */
    float scale;
    memcpy(&scale, &bits, sizeof scale);
    return p * scale;
}
static inline real r_sqrt(real x) { return sqrtf(x); }
#define TINY_R2 1e-24f
#endif

static inline __attribute__((always_inline)) real sigm(real x) { return (real)1 / ((real)1 + r_exp(-x)); }
/* d silu / dx from x and sigmoid(x) */
static inline __attribute__((always_inline)) real dsilu(real x, real s) { return s * ((real)1 + x * ((real)1 - s)); }

/* H-vectors.  GCC/Clang vector extensions make each helper a few whole-register
 * instructions (one AVX-512 register holds 16 floats); left to itself the auto-vectoriser
 * picks the wrong loop of a 16x16 product and runs ~20x slower. */
typedef real vec __attribute__((vector_size(H * sizeof(real))));
static inline vec vld(const real *p) { vec v; memcpy(&v, p, sizeof v); return v; }
static inline void vst(real *p, vec v) { memcpy(p, &v, sizeof v); }
static inline void vzero(real *y) { vst(y, (vec){0}); }
static inline void vadd(real *y, const real *x) { vst(y, vld(y) + vld(x)); }
static inline void vaxpy(real *y, real a, const real *x) { vst(y, vld(y) + a * vld(x)); }
static inline void vmul(real *y, const real *a, const real *b) { vst(y, vld(a) * vld(b)); }
static inline void vsum(real *y, const real *a, const real *b) { vst(y, vld(a) + vld(b)); }
static inline void edge_pre(real *pre, const real *pa, const real *pb, const real *wr, real r, const real *qe) {
    vst(pre, vld(pa) + vld(pb) + r * vld(wr) + vld(qe));
}
/* dot product of two H-vectors, summed as a fixed tree (deterministic) */
static inline real vdot(const real *a, const real *b) {
    real t[H];
    vst(t, vld(a) * vld(b));
    for (int w = H / 2; w >= 1; w /= 2)
        for (int o = 0; o < w; o++) t[o] += t[o + w];
    return t[0];
}
/* gx = gy * silu'(x), from x and s = sigmoid(x) */
static inline void act_back(real *gx, const real *gy, const real *x, const real *s) {
    const vec sv = vld(s);
    vst(gx, vld(gy) * (sv * ((real)1 + vld(x) * ((real)1 - sv))));
}

/* ------------------------------------------------------------------ parameter order
 * Must match _param_order() in _estag_fast.py. */
enum { P_EMBED_W, P_EMBED_B, P_TIME, P_FILTER_W, P_FILTER_B, P_POOL, P_GLOBAL };
enum {
    ESM_EDGE_IN_W, ESM_EDGE_IN_B, ESM_EDGE_OUT_W, ESM_EDGE_OUT_B, ESM_NODE_IN_W, ESM_NODE_IN_B,
    ESM_NODE_OUT_W, ESM_NODE_OUT_B, ESM_COORD_IN_W, ESM_COORD_IN_B, ESM_COORD_OUT_W, ESM_NP
};
enum {
    ETM_Q0_W, ETM_Q0_B, ETM_Q2_W, ETM_Q2_B, ETM_K0_W, ETM_K0_B, ETM_K2_W, ETM_K2_B,
    ETM_V0_W, ETM_V0_B, ETM_V2_W, ETM_V2_B, ETM_C0_W, ETM_C0_B, ETM_C2_W, ETM_NP
};

typedef struct {
    int B, T, N, E, F, L, attn, causal, filter;
    real eps;
    const int64_t *row, *col;
    const real *z;       /* (N, F) node features */
    const real *inv_deg; /* (N,) */
    const real *dft;     /* (2K, T) */
} Dims;

/* ------------------------------------------------------------------ small linear algebra
 * Weights are PyTorch's (out, in) row-major; the forward products use them transposed. */
/* dW[o][i] += gy[o] x[i], dW (H, ld) row-major, columns [0, in) */
static inline void outer_acc(real *restrict dW, int ld, const real *restrict gy, const real *restrict x, int in) {
    if (in == H) {
        const vec xv = vld(x);
        for (int o = 0; o < H; o++) vst(dW + (size_t)o * ld, vld(dW + (size_t)o * ld) + gy[o] * xv);
        return;
    }
    for (int o = 0; o < H; o++) {
        const real g = gy[o];
        real *d = dW + (size_t)o * ld;
        for (int i = 0; i < in; i++) d[i] += g * x[i];
    }
}

/* ------------------------------------------------------------------ row-batched products
 * A layer is applied to all rows of a sample (E*T edge rows or N*T node rows) before the
 * next layer starts: the rows are independent, so the processor overlaps them instead of
 * waiting on one row's chain of products and activations. */
/* Y[r] = (acc ? Y[r] : b or 0) + sum_i X[r][i] M[i][:] for r < n: H-wide rows of M (stride ldm)
 * combined with the scalars of row r of X (stride ldx) into row r of Y (stride ldy).  Four rows at a
 * time, so that their independent chains overlap. */
static void rows_combine(real *restrict Y, int ldy, const real *restrict M, int ldm, const real *b,
                         const real *restrict X, int ldx, int in, int n, int acc) {
    const vec b0 = b ? vld(b) : (vec){0};
    int r = 0;
    for (; r + 4 <= n; r += 4) {
        real *y0 = Y + (size_t)r * ldy;
        vec a0 = acc ? vld(y0) : b0, a1 = acc ? vld(y0 + ldy) : b0;
        vec a2 = acc ? vld(y0 + 2 * ldy) : b0, a3 = acc ? vld(y0 + 3 * ldy) : b0;
        const real *x0 = X + (size_t)r * ldx;
        for (int i = 0; i < in; i++) {
            const vec m = vld(M + (size_t)i * ldm);
            a0 += x0[i] * m;
            a1 += x0[ldx + i] * m;
            a2 += x0[2 * ldx + i] * m;
            a3 += x0[3 * ldx + i] * m;
        }
        vst(y0, a0); vst(y0 + ldy, a1); vst(y0 + 2 * ldy, a2); vst(y0 + 3 * ldy, a3);
    }
    for (; r < n; r++) {
        real *y0 = Y + (size_t)r * ldy;
        vec a0 = acc ? vld(y0) : b0;
        const real *x0 = X + (size_t)r * ldx;
        for (int i = 0; i < in; i++) a0 += x0[i] * vld(M + (size_t)i * ldm);
        vst(y0, a0);
    }
}
/* Y[r] = (acc ? Y[r] : b or 0) + sum_i X[r][i] Wt[i][:]: a linear layer on n rows, Wt (in, H) the
 * transposed weight, X rows of stride ldx, Y rows of H */
static void rows_linear(real *Y, const real *Wt, const real *b, const real *X, int ldx, int in, int n, int acc) {
    rows_combine(Y, H, Wt, H, b, X, ldx, in, n, acc);
}
/* s = sigmoid(x), y = x * s (SiLU) over n rows */
static __attribute__((noinline)) void rows_act(const real *restrict x, real *restrict s, real *restrict y, int n) {
    for (int q = 0; q < n * H; q++) { s[q] = sigm(x[q]); y[q] = x[q] * s[q]; }
}
/* gx = gy * silu'(x) over n rows (gx may be gy) */
static void rows_act_back(real *gx, const real *gy, const real *x, const real *s, int n) {
    for (int r = 0; r < n; r++) act_back(gx + (size_t)r * H, gy + (size_t)r * H, x + (size_t)r * H, s + (size_t)r * H);
}
static void rows_mul(real *y, const real *a, const real *b, int n) {
    for (int r = 0; r < n; r++) vmul(y + (size_t)r * H, a + (size_t)r * H, b + (size_t)r * H);
}
/* db += sum_r G[r] */
static void rows_sum(real *db, const real *G, int n) {
    vec acc = vld(db);
    for (int r = 0; r < n; r++) acc += vld(G + (size_t)r * H);
    vst(db, acc);
}
/* GX[r][0:in] (+)= sum_o GY[r][o] W[o][0:in], W (H, ld) row-major; GX rows of stride ldx */
static void rows_back(real *restrict GX, int ldx, const real *restrict W, int ld, const real *restrict GY, int in, int n, int acc) {
    if (in == H) {
        rows_combine(GX, ldx, W, ld, 0, GY, H, H, n, acc);
        return;
    }
    for (int r = 0; r < n; r++) {
        real *g0 = GX + (size_t)r * ldx;
        if (!acc)
            for (int i = 0; i < in; i++) g0[i] = 0;
        for (int o = 0; o < H; o++) {
            const real g = GY[(size_t)r * H + o];
            const real *w = W + (size_t)o * ld;
            for (int i = 0; i < in; i++) g0[i] += g * w[i];
        }
    }
}
/* dW[o][0:in] += sum_r GY[r][o] X[r][0:in], dW (H, ld) row-major, X rows of stride ldx */
static void rows_outer(real *restrict dW, int ld, const real *restrict GY, const real *restrict X, int ldx, int in, int n) {
    if (in == H) {
        for (int o = 0; o < H; o++) {
            vec a0 = vld(dW + (size_t)o * ld), a1 = {0};
            int r = 0;
            for (; r + 2 <= n; r += 2) {
                a0 += GY[(size_t)r * H + o] * vld(X + (size_t)r * ldx);
                a1 += GY[(size_t)(r + 1) * H + o] * vld(X + (size_t)(r + 1) * ldx);
            }
            for (; r < n; r++) a0 += GY[(size_t)r * H + o] * vld(X + (size_t)r * ldx);
            vst(dW + (size_t)o * ld, a0 + a1);
        }
        return;
    }
    for (int r = 0; r < n; r++) outer_acc(dW, ld, GY + (size_t)r * H, X + (size_t)r * ldx, in);
}

/* transpose the (H, ld) columns [c0, c0+in) of W into Wt (in, H) */
static void transpose_cols(real *Wt, const real *W, int ld, int c0, int in) {
    for (int i = 0; i < in; i++)
        for (int o = 0; o < H; o++) Wt[i * H + o] = W[(size_t)o * ld + c0 + i];
}

/* ------------------------------------------------------------------ transposed weights
 * For the forward products y += x W^T the weights are used as Wt (in, H). */
typedef struct {
    real *ea, *eb, *ee, *eo, *na, *nb, *nc, *no, *ci; /* ESM */
    real *q0, *q2, *k0, *k2, *v0, *v2, *c0;            /* ETM */
} LayerT;

/* ------------------------------------------------------------------ workspace of one sample */
typedef struct {
    /* EDFT (sample-dependent parts) */
    real *S, *P, *Asum, *Csum, *a, *c; /* (E,K) (N,K) (E) (N) (E,K) (N,K) */
    /* states: h_s (N,T,H), x_s (N,T,3) for s = 0 .. 2L (ESM in, ETM in, ...) */
    real **hs, **xs;
    /* ESM per layer */
    real **pre, **spre, **u, **su, **g, **sg; /* (E,T,H) */
    real **zz, **rr, **inv, **phi;           /* (E,T,3) (E,T) (E,T) (E,T) */
    real **agg, **preh, **sh;                /* (N,T,H) */
    /* ETM per layer: a1/s1/a2/s2 for q,k,v (3 each, (N,T,H)), coord pre/sig, phi, alpha, sp, spx */
    real **ta1, **ts1, **ta2, **ts2;         /* [l*3 + m] */
    real **tc, **tsc, **tphi, **alpha, **sp, **spx;
    /* backward scratch */
    real *gh, *gx, *gx2, *ga, *gc, *gagg, *gPA, *gPB, *gQE;
    real *gq, *gk, *gv, *gphi;
    real *PA, *PB, *QE, *dx;
    real *tA, *tB, *tC, *tD; /* (max(E,N)*T, H) scratch rows */
    real *gzE, *gphiE;       /* (E,T,3), (E,T) */
    real *fre, *fim;         /* (N,3,K) spectrum of the sample */
    /* gradient accumulators of this thread */
    real *grad;  /* flat, same layout as the Python flat gradient */
    real *gw;    /* (N, K) dL/dw_k(h_i), summed over samples */
    real *gh0;   /* (N, T, H) dL/dh0, summed over samples */
    real *fwd;   /* the forward record */
    char *block;
} Work;

typedef struct {
    const Dims *d;
    const real *const *P;
    const int64_t *goff; /* offset of each parameter's gradient in the flat buffer */
    real *h0; /* (N,T,H) */
    real *w;  /* (N,K) */
    LayerT *lt;
} Ctx;

/* The forward pass's record of one sample (what the backward pass reads): EDFT features,
 * the 2L+1 states and every layer's pre-activations.  bind_fwd points the workspace at
 * `base` (or, with base NULL, only counts the floats). */
static size_t bind_fwd(Work *w, const Dims *d, real *base) {
    size_t N = d->N, E = d->E, T = d->T, K = d->T - 1, L = d->L, NT = N * T, ET = E * T, off = 0;
#define TAKE(n) (off += (n), base ? base + off - (n) : (real *)0)
    w->S = TAKE(E * K); w->P = TAKE(N * K); w->Asum = TAKE(E); w->Csum = TAKE(N);
    w->a = TAKE(E * K); w->c = TAKE(N * K);
    for (size_t s = 0; s < 2 * L + 1; s++) { w->hs[s] = TAKE(NT * H); w->xs[s] = TAKE(NT * 3); }
    for (size_t l = 0; l < L; l++) {
        w->pre[l] = TAKE(ET * H); w->spre[l] = TAKE(ET * H); w->u[l] = TAKE(ET * H);
        w->su[l] = TAKE(ET * H); w->g[l] = TAKE(ET * H); w->sg[l] = TAKE(ET * H);
        w->zz[l] = TAKE(ET * 3); w->rr[l] = TAKE(ET); w->inv[l] = TAKE(ET); w->phi[l] = TAKE(ET);
        w->agg[l] = TAKE(NT * H); w->preh[l] = TAKE(NT * H); w->sh[l] = TAKE(NT * H);
        for (int m = 0; m < 3; m++) {
            w->ta1[l * 3 + m] = TAKE(NT * H); w->ts1[l * 3 + m] = TAKE(NT * H);
            w->ta2[l * 3 + m] = TAKE(NT * H); w->ts2[l * 3 + m] = TAKE(NT * H);
        }
        w->tc[l] = TAKE(NT * H); w->tsc[l] = TAKE(NT * H); w->tphi[l] = TAKE(NT);
        w->alpha[l] = TAKE(N * T * T); w->sp[l] = TAKE(NT); w->spx[l] = TAKE(NT * 3);
    }
#undef TAKE
    return off;
}

/* The workspace of one thread: forward record, scratch and gradient accumulator. */
static int work_init(Work *w, const Dims *d, int64_t gsize) {
    size_t N = d->N, E = d->E, T = d->T, K = d->T - 1, L = d->L, NT = N * T, ET = E * T;
    const size_t R = (ET > NT ? ET : NT) * H;
    const size_t nptr = (2 * L + 1) * 2 + L * 13 + L * 3 * 4 + L * 6;
    size_t nf = 2 * NT * H + 2 * NT * 3 + E * K + N * K + E * H; /* gh gx gagg gPA | gx2 | ga gc gQE */
    nf += 3 * NT * H + NT + 2 * NT * H + E * H + NT * 3;          /* gq gk gv gphi PA PB QE dx */
    nf += N * K + NT * H + 4 * R + ET * 3 + ET + 2 * NT * H;      /* gw gh0 tA..tD gzE gphiE gPB gv */
    nf += 2 * N * 3 * K + (size_t)gsize + 16;                    /* fre fim grad */
    w->block = (char *)calloc(1, nptr * sizeof(real *) + nf * sizeof(real) + 64);
    if (!w->block) return -1;
    real **pp = (real **)w->block;
    real *f = (real *)(w->block + nptr * sizeof(real *));
#define TAKE(n) (f += (n), f - (n))
#define PTRS(n) (pp += (n), pp - (n))
    w->hs = PTRS(2 * L + 1); w->xs = PTRS(2 * L + 1);
    w->pre = PTRS(L); w->spre = PTRS(L); w->u = PTRS(L); w->su = PTRS(L); w->g = PTRS(L); w->sg = PTRS(L);
    w->zz = PTRS(L); w->rr = PTRS(L); w->inv = PTRS(L); w->phi = PTRS(L);
    w->agg = PTRS(L); w->preh = PTRS(L); w->sh = PTRS(L);
    w->ta1 = PTRS(3 * L); w->ts1 = PTRS(3 * L); w->ta2 = PTRS(3 * L); w->ts2 = PTRS(3 * L);
    w->tc = PTRS(L); w->tsc = PTRS(L); w->tphi = PTRS(L); w->alpha = PTRS(L); w->sp = PTRS(L); w->spx = PTRS(L);
    w->gh = TAKE(NT * H); w->gx = TAKE(NT * 3); w->gx2 = TAKE(NT * 3);
    w->ga = TAKE(E * K); w->gc = TAKE(N * K); w->gagg = TAKE(NT * H); w->gPA = TAKE(NT * H);
    w->gPB = TAKE(NT * H); w->gQE = TAKE(E * H);
    w->gq = TAKE(NT * H); w->gk = TAKE(NT * H); w->gv = TAKE(NT * H); w->gphi = TAKE(NT);
    w->PA = TAKE(NT * H); w->PB = TAKE(NT * H); w->QE = TAKE(E * H); w->dx = TAKE(NT * 3);
    w->gw = TAKE(N * K); w->gh0 = TAKE(NT * H);
    w->tA = TAKE(R); w->tB = TAKE(R); w->tC = TAKE(R); w->tD = TAKE(R);
    w->gzE = TAKE(ET * 3); w->gphiE = TAKE(ET);
    w->fre = TAKE(N * 3 * K); w->fim = TAKE(N * 3 * K);
    w->grad = TAKE((size_t)gsize);
#undef TAKE
#undef PTRS
    w->fwd = (real *)calloc(bind_fwd(w, d, 0) + 16, sizeof(real));
    if (!w->fwd) return -1;
    bind_fwd(w, d, w->fwd);
    return 0;
}

static void work_free(Work *w) {
    free(w->fwd);
    free(w->block);
}

/* ------------------------------------------------------------------ forward of one sample */
static void edft_forward(const Ctx *cx, Work *w, const real *xb /* (T,N,3) of this sample */) {
    const Dims *d = cx->d;
    const int N = d->N, E = d->E, T = d->T, K = T - 1;
    real *fre = w->fre, *fim = w->fim; /* (N, 3, K) each: in the workspace, not on the stack */
    memset(fre, 0, sizeof(real) * N * 3 * K);
    memset(fim, 0, sizeof(real) * N * 3 * K);
    for (int t = 0; t < T; t++) {
        real mean[3] = {0, 0, 0};
        for (int n = 0; n < N; n++)
            for (int c = 0; c < 3; c++) mean[c] += xb[(t * N + n) * 3 + c];
        for (int c = 0; c < 3; c++) mean[c] /= (real)N;
        for (int n = 0; n < N; n++)
            for (int c = 0; c < 3; c++) {
                const real v = xb[(t * N + n) * 3 + c] - mean[c];
                for (int k = 0; k < K; k++) {
                    fre[(n * 3 + c) * K + k] += d->dft[k * T + t] * v;
                    fim[(n * 3 + c) * K + k] += d->dft[(K + k) * T + t] * v;
                }
            }
    }
    for (int e = 0; e < E; e++) {
        const int i = (int)d->row[e], j = (int)d->col[e];
        real sum = 0;
        for (int k = 0; k < K; k++) {
            real dre = 0, dim = 0;
            for (int c = 0; c < 3; c++) {
                const real ri = fre[(i * 3 + c) * K + k], ii = fim[(i * 3 + c) * K + k];
                const real rj = fre[(j * 3 + c) * K + k], ij = fim[(j * 3 + c) * K + k];
                dre += ri * rj + ii * ij;
                dim += ri * ij - ii * rj;
            }
            const real s = r_sqrt(dre * dre + dim * dim);
            w->S[e * K + k] = s;
            const real araw = s * cx->w[i * K + k] * cx->w[j * K + k];
            w->a[e * K + k] = araw;
            sum += araw;
        }
        w->Asum[e] = sum + d->eps;
        for (int k = 0; k < K; k++) w->a[e * K + k] /= w->Asum[e];
    }
    for (int n = 0; n < N; n++) {
        real sum = 0;
        for (int k = 0; k < K; k++) {
            real p = 0;
            for (int c = 0; c < 3; c++) {
                const real ri = fre[(n * 3 + c) * K + k], ii = fim[(n * 3 + c) * K + k];
                p += ri * ri + ii * ii;
            }
            w->P[n * K + k] = p;
            const real craw = p * cx->w[n * K + k];
            w->c[n * K + k] = craw;
            sum += craw;
        }
        w->Csum[n] = sum + d->eps;
        for (int k = 0; k < K; k++) w->c[n * K + k] /= w->Csum[n];
    }
}

static void esm_forward(const Ctx *cx, Work *w, int l, int update_h) {
    const Dims *d = cx->d;
    const int N = d->N, E = d->E, T = d->T, K = T - 1, NT = N * T, ET = E * T;
    const real *const *P = cx->P + P_GLOBAL + (size_t)l * (ESM_NP + (d->attn ? ETM_NP : 0));
    const LayerT *lt = &cx->lt[l];
    const int ld_e = 2 * H + 1 + K;
    const real *h = w->hs[2 * l], *x = w->xs[2 * l];
    real *hn = w->hs[2 * l + 1], *xn = w->xs[2 * l + 1];
    real wr[H];
    for (int o = 0; o < H; o++) wr[o] = P[ESM_EDGE_IN_W][(size_t)o * ld_e + 2 * H];
    /* first layer of phi_m, applied piecewise: node terms per node, A_ij term per edge */
    rows_linear(w->PA, lt->ea, P[ESM_EDGE_IN_B], h, H, H, NT, 0);
    rows_linear(w->PB, lt->eb, 0, h, H, H, NT, 0);
    rows_linear(w->QE, lt->ee, 0, w->a, K, K, E, 0);
    real *pre = w->pre[l], *spre = w->spre[l], *u = w->u[l], *su = w->su[l], *g = w->g[l], *sg = w->sg[l];
    for (int e = 0; e < E; e++) {
        const int i = (int)d->row[e], j = (int)d->col[e];
        for (int t = 0; t < T; t++) {
            const size_t et = (size_t)e * T + t;
            const real *xi = x + ((size_t)i * T + t) * 3, *xj = x + ((size_t)j * T + t) * 3;
            real *z = w->zz[l] + et * 3;
            z[0] = xi[0] - xj[0]; z[1] = xi[1] - xj[1]; z[2] = xi[2] - xj[2];
            const real r = z[0] * z[0] + z[1] * z[1] + z[2] * z[2];
            w->rr[l][et] = r;
            w->inv[l][et] = (real)1 / r_sqrt(r > TINY_R2 ? r : TINY_R2);
            edge_pre(pre + et * H, w->PA + ((size_t)i * T + t) * H, w->PB + ((size_t)j * T + t) * H, wr, r,
                     w->QE + (size_t)e * H);
        }
    }
    real *m1 = w->tA, *m = w->tB, *g1 = w->tC;
    rows_act(pre, spre, m1, ET);                                     /* act(phi_m layer 1) */
    rows_linear(u, lt->eo, P[ESM_EDGE_OUT_B], m1, H, H, ET, 0);
    rows_act(u, su, m, ET);                                          /* m_ij */
    rows_linear(g, lt->ci, P[ESM_COORD_IN_B], m, H, H, ET, 0);
    rows_act(g, sg, g1, ET);
    const real *wco = P[ESM_COORD_OUT_W];
    memset(w->dx, 0, sizeof(real) * NT * 3);
    real *agg = w->agg[l];
    if (update_h) memset(agg, 0, sizeof(real) * NT * H);
    for (int e = 0; e < E; e++) {
        const int i = (int)d->row[e];
        for (int t = 0; t < T; t++) {
            const size_t et = (size_t)e * T + t;
            const real ph = vdot(wco, g1 + et * H);
            w->phi[l][et] = ph;
            const real *z = w->zz[l] + et * 3;
            real *dxi = w->dx + ((size_t)i * T + t) * 3;
            const real s = ph * w->inv[l][et];
            dxi[0] += z[0] * s; dxi[1] += z[1] * s; dxi[2] += z[2] * s;
            if (update_h) vadd(agg + ((size_t)i * T + t) * H, m + et * H);
        }
    }
    for (int n = 0; n < N; n++)
        for (int q = 0; q < T * 3; q++) {
            const size_t idx = (size_t)n * T * 3 + q;
            xn[idx] = x[idx] + w->dx[idx] * d->inv_deg[n];
        }
    if (!update_h) return;
    real *preh = w->preh[l], *sh = w->sh[l], *cn = w->tA, *act = w->tB, *out = w->tC;
    rows_linear(preh, lt->na, P[ESM_NODE_IN_B], h, H, H, NT, 0);
    rows_linear(preh, lt->nb, 0, agg, H, H, NT, 1);
    rows_linear(cn, lt->nc, 0, w->c, K, K, N, 0); /* the c_i term, the same for every frame */
    for (int n = 0; n < N; n++)
        for (int t = 0; t < T; t++) vadd(preh + ((size_t)n * T + t) * H, cn + (size_t)n * H);
    rows_act(preh, sh, act, NT);
    rows_linear(out, lt->no, P[ESM_NODE_OUT_B], act, H, H, NT, 0);
    for (int r = 0; r < NT; r++) vsum(hn + (size_t)r * H, h + (size_t)r * H, out + (size_t)r * H);
}

static void etm_forward(const Ctx *cx, Work *w, int l, int update_h) {
    const Dims *d = cx->d;
    const int N = d->N, T = d->T, NT = N * T;
    const real *const *P = cx->P + P_GLOBAL + (size_t)l * (ESM_NP + ETM_NP) + ESM_NP;
    const LayerT *lt = &cx->lt[l];
    const real *h = w->hs[2 * l + 1], *x = w->xs[2 * l + 1];
    real *hn = w->hs[2 * l + 2], *xn = w->xs[2 * l + 2];
    const real *W0t[3] = {lt->q0, lt->k0, lt->v0}, *W2t[3] = {lt->q2, lt->k2, lt->v2};
    const real *B0[3] = {P[ETM_Q0_B], P[ETM_K0_B], P[ETM_V0_B]}, *B2[3] = {P[ETM_Q2_B], P[ETM_K2_B], P[ETM_V2_B]};
    real *qkv[3] = {w->gq, w->gk, w->gv}; /* scratch for the q, k, v values */
    for (int m = 0; m < 3; m++) {
        real *a1 = w->ta1[l * 3 + m], *s1 = w->ts1[l * 3 + m], *a2 = w->ta2[l * 3 + m], *s2 = w->ts2[l * 3 + m];
        rows_linear(a1, W0t[m], B0[m], h, H, H, NT, 0);
        rows_act(a1, s1, w->tA, NT);
        rows_linear(a2, W2t[m], B2[m], w->tA, H, H, NT, 0);
        rows_act(a2, s2, qkv[m], NT);
    }
    real *c1 = w->tc[l], *sc = w->tsc[l];
    rows_linear(c1, lt->c0, P[ETM_C0_B], w->gv, H, H, NT, 0);
    rows_act(c1, sc, w->tA, NT);
    for (int r = 0; r < NT; r++) w->tphi[l][r] = vdot(P[ETM_C2_W], w->tA + (size_t)r * H);
    for (int n = 0; n < N; n++) {
        for (int t = 0; t < T; t++) {
            const int smax = d->causal ? t + 1 : T;
            const real *q = w->gq + ((size_t)n * T + t) * H;
            real *al = w->alpha[l] + ((size_t)n * T + t) * T;
            real mx = -1e30f;
            for (int s = 0; s < smax; s++) {
                const real sc_ = vdot(q, w->gk + ((size_t)n * T + s) * H);
                al[s] = sc_;
                if (sc_ > mx) mx = sc_;
            }
            real sum = 0;
            for (int s = 0; s < smax; s++) { al[s] = r_exp(al[s] - mx); sum += al[s]; }
            for (int s = 0; s < smax; s++) al[s] /= sum;
            for (int s = smax; s < T; s++) al[s] = 0;
            real hv[H], sp = 0, spx[3] = {0, 0, 0};
            vzero(hv);
            for (int s = 0; s < smax; s++) {
                const real a = al[s], ph = w->tphi[l][n * T + s];
                const real *xs = x + ((size_t)n * T + s) * 3;
                vaxpy(hv, a, w->gv + ((size_t)n * T + s) * H);
                sp += a * ph;
                spx[0] += a * ph * xs[0]; spx[1] += a * ph * xs[1]; spx[2] += a * ph * xs[2];
            }
            const size_t r = (size_t)n * T + t;
            w->sp[l][r] = sp;
            for (int c = 0; c < 3; c++) {
                w->spx[l][r * 3 + c] = spx[c];
                xn[r * 3 + c] = x[r * 3 + c] + x[r * 3 + c] * sp - spx[c];
            }
            if (update_h) vsum(hn + r * H, h + r * H, hv);
        }
    }
}

/* full forward of sample b; returns the prediction in out (N, 3) */
static void sample_forward(const Ctx *cx, Work *w, const real *xb, real *out) {
    const Dims *d = cx->d;
    const int N = d->N, T = d->T, NT = N * T, L = d->L;
    edft_forward(cx, w, xb);
    memcpy(w->hs[0], cx->h0, sizeof(real) * NT * H);
    for (int n = 0; n < N; n++)
        for (int t = 0; t < T; t++)
            for (int c = 0; c < 3; c++) w->xs[0][((size_t)n * T + t) * 3 + c] = xb[((size_t)t * N + n) * 3 + c];
    for (int l = 0; l < L; l++) {
        const int last = l == L - 1;
        if (d->attn) {
            esm_forward(cx, w, l, 1);
            etm_forward(cx, w, l, !last);
        } else {
            esm_forward(cx, w, l, !last);
            /* no ETM: the ETM-input state is the next ESM's input */
            memcpy(w->hs[2 * l + 2], w->hs[2 * l + 1], sizeof(real) * NT * H);
            memcpy(w->xs[2 * l + 2], w->xs[2 * l + 1], sizeof(real) * NT * 3);
        }
    }
    const real *x = w->xs[2 * L];
    const real *pool = cx->P[P_POOL];
    for (int n = 0; n < N; n++) {
        const real *xl = x + ((size_t)n * T + T - 1) * 3;
        for (int c = 0; c < 3; c++) {
            real acc = 0;
            for (int t = 0; t < T - 1; t++) acc += pool[t] * (x[((size_t)n * T + t) * 3 + c] - xl[c]);
            out[n * 3 + c] = xl[c] + acc;
        }
    }
}

/* ------------------------------------------------------------------ backward of one sample */
#define GRAD(k) (w->grad + cx->goff[(k)])

/* gh (N,T,H): grad of the ETM's output h (ignored if !update_h); gx (N,T,3): of its output x.
 * Both are turned in place into the grads of its input. */
static void etm_backward(const Ctx *cx, Work *w, int l, int update_h) {
    const Dims *d = cx->d;
    const int N = d->N, T = d->T, NT = N * T;
    const int base = P_GLOBAL + l * (ESM_NP + ETM_NP) + ESM_NP;
    const real *const *P = cx->P + base;
    const real *h = w->hs[2 * l + 1], *x = w->xs[2 * l + 1];
    real *gh = w->gh, *gx = w->gx;
    real *q = w->tA, *k = w->tB, *v = w->tC; /* the q, k, v values, recomputed */
    rows_mul(q, w->ta2[l * 3 + 0], w->ts2[l * 3 + 0], NT);
    rows_mul(k, w->ta2[l * 3 + 1], w->ts2[l * 3 + 1], NT);
    rows_mul(v, w->ta2[l * 3 + 2], w->ts2[l * 3 + 2], NT);
    real *gq = w->gq, *gk = w->gk, *gv = w->gv;
    memset(gq, 0, sizeof(real) * NT * H);
    memset(gk, 0, sizeof(real) * NT * H);
    memset(gv, 0, sizeof(real) * NT * H);
    memset(w->gphi, 0, sizeof(real) * NT);
    real *gxo = w->gx2;
    memcpy(gxo, gx, sizeof(real) * NT * 3);
    for (int r = 0; r < NT; r++) { /* x_t (1 + sp_t): the residual and the x_t sp_t term */
        const real sp = w->sp[l][r];
        for (int c = 0; c < 3; c++) gx[r * 3 + c] = gxo[r * 3 + c] * ((real)1 + sp);
    }
    for (int n = 0; n < N; n++) {
        for (int t = 0; t < T; t++) {
            const size_t r = (size_t)n * T + t;
            const int smax = d->causal ? t + 1 : T;
            const real *go = gxo + r * 3, *xt = x + r * 3;
            const real gsp = go[0] * xt[0] + go[1] * xt[1] + go[2] * xt[2];
            const real gspx[3] = {-go[0], -go[1], -go[2]};
            const real *ghv = gh + r * H;
            const real *al = w->alpha[l] + r * T;
            real galpha[T];
            real dot = 0;
            for (int s = 0; s < smax; s++) {
                const size_t rs = (size_t)n * T + s;
                const real ph = w->tphi[l][rs];
                const real *xs = x + rs * 3;
                const real gx_dot = gspx[0] * xs[0] + gspx[1] * xs[1] + gspx[2] * xs[2];
                real ga = gsp * ph + ph * gx_dot;
                if (update_h) {
                    ga += vdot(ghv, v + rs * H);
                    vaxpy(gv + rs * H, al[s], ghv);
                }
                w->gphi[rs] += al[s] * (gsp + gx_dot);
                real *gxs = gx + rs * 3;
                const real a_ph = al[s] * ph;
                gxs[0] += a_ph * gspx[0]; gxs[1] += a_ph * gspx[1]; gxs[2] += a_ph * gspx[2];
                galpha[s] = ga;
                dot += al[s] * ga;
            }
            const real *qt = q + r * H;
            vec gqt = {0}; /* in a register: a store and reload per s would chain the loop */
            for (int s = 0; s < smax; s++) { /* softmax backward, then the q . k scores */
                const size_t rs = (size_t)n * T + s;
                const real gsc = al[s] * (galpha[s] - dot);
                gqt += gsc * vld(k + rs * H);
                vaxpy(gk + rs * H, gsc, qt);
            }
            vst(gq + r * H, gqt);
        }
    }
    if (!update_h) memset(gh, 0, sizeof(real) * NT * H); /* h_out unused: only the attention path */
    /* coordinate MLP phi(v) = w2 . act(W0 v + b0) */
    const real *wc2 = P[ETM_C2_W];
    real *c1 = w->tc[l], *sc = w->tsc[l], *act = w->tD, *gc1 = w->tA; /* q no longer needed */
    rows_mul(act, c1, sc, NT);
    real *dwc2 = GRAD(base + ETM_C2_W);
    for (int r = 0; r < NT; r++) {
        vaxpy(dwc2, w->gphi[r], act + (size_t)r * H);
        for (int o = 0; o < H; o++) gc1[(size_t)r * H + o] = w->gphi[r] * wc2[o];
    }
    rows_act_back(gc1, gc1, c1, sc, NT);
    rows_sum(GRAD(base + ETM_C0_B), gc1, NT);
    rows_outer(GRAD(base + ETM_C0_W), H, gc1, v, H, H, NT);
    rows_back(gv, H, P[ETM_C0_W], H, gc1, H, NT, 1);
    /* q, k, v MLPs: act(W2 act(W0 h + b0) + b2) */
    const int W0[3] = {ETM_Q0_W, ETM_K0_W, ETM_V0_W}, W2[3] = {ETM_Q2_W, ETM_K2_W, ETM_V2_W};
    real *gvals[3] = {gq, gk, gv};
    real *u1 = w->tA, *gu1 = w->tB;
    for (int m = 0; m < 3; m++) {
        const real *a1 = w->ta1[l * 3 + m], *s1 = w->ts1[l * 3 + m], *a2 = w->ta2[l * 3 + m], *s2 = w->ts2[l * 3 + m];
        real *g2 = gvals[m];
        rows_act_back(g2, g2, a2, s2, NT);
        rows_sum(GRAD(base + W2[m] + 1), g2, NT);
        rows_mul(u1, a1, s1, NT);
        rows_outer(GRAD(base + W2[m]), H, g2, u1, H, H, NT);
        rows_back(gu1, H, P[W2[m]], H, g2, H, NT, 0);
        rows_act_back(gu1, gu1, a1, s1, NT);
        rows_sum(GRAD(base + W0[m] + 1), gu1, NT);
        rows_outer(GRAD(base + W0[m]), H, gu1, h, H, H, NT);
        rows_back(gh, H, P[W0[m]], H, gu1, H, NT, 1);
    }
}

static void esm_backward(const Ctx *cx, Work *w, int l, int update_h) {
    const Dims *d = cx->d;
    const int N = d->N, E = d->E, T = d->T, K = T - 1, NT = N * T, ET = E * T;
    const int base = P_GLOBAL + l * (ESM_NP + (d->attn ? ETM_NP : 0));
    const real *const *P = cx->P + base;
    const int ld_e = 2 * H + 1 + K, ld_n = 2 * H + K;
    const real *h = w->hs[2 * l];
    real *gh = w->gh, *gx = w->gx;
    const real *We = P[ESM_EDGE_IN_W], *wco = P[ESM_COORD_OUT_W];
    real *dWe = GRAD(base + ESM_EDGE_IN_W);
    /* node update h + phi_h([h, agg, c]) */
    if (update_h) {
        const real *Wna = P[ESM_NODE_IN_W];
        real *dWna = GRAD(base + ESM_NODE_IN_W);
        real *preh = w->preh[l], *sh = w->sh[l], *act = w->tA, *gp = w->tB, *gpn = w->tC;
        rows_mul(act, preh, sh, NT);
        rows_sum(GRAD(base + ESM_NODE_OUT_B), gh, NT);
        rows_outer(GRAD(base + ESM_NODE_OUT_W), H, gh, act, H, H, NT);
        rows_back(gp, H, P[ESM_NODE_OUT_W], H, gh, H, NT, 0);
        rows_act_back(gp, gp, preh, sh, NT);
        rows_sum(GRAD(base + ESM_NODE_IN_B), gp, NT);
        rows_outer(dWna, ld_n, gp, h, H, H, NT);
        rows_outer(dWna + H, ld_n, gp, w->agg[l], H, H, NT);
        for (int n = 0; n < N; n++) { /* c_i is the same for every frame: sum gp over t first */
            vzero(gpn + (size_t)n * H);
            for (int t = 0; t < T; t++) vadd(gpn + (size_t)n * H, gp + ((size_t)n * T + t) * H);
        }
        rows_outer(dWna + 2 * H, ld_n, gpn, w->c, K, K, N);
        rows_back(w->gc, K, Wna + 2 * H, ld_n, gpn, K, N, 1);
        rows_back(gh, H, Wna, ld_n, gp, H, NT, 1);          /* residual: gh already holds the output grad */
        rows_back(w->gagg, H, Wna + H, ld_n, gp, H, NT, 0); /* grad of agg = sum_j m_ij */
    } else {
        memset(gh, 0, sizeof(real) * NT * H);
    }
    /* coordinate update x_i + mean_j x_ij / |x_ij| phi_x(m_ij) */
    real *gz = w->gzE, *gphi = w->gphiE;
    for (int e = 0; e < E; e++) {
        const int i = (int)d->row[e];
        for (int t = 0; t < T; t++) {
            const size_t et = (size_t)e * T + t;
            const real *gxo = gx + ((size_t)i * T + t) * 3;
            const real s = d->inv_deg[i];
            const real G[3] = {gxo[0] * s, gxo[1] * s, gxo[2] * s};
            const real *z = w->zz[l] + et * 3;
            const real r = w->rr[l][et], inv = w->inv[l][et], ph = w->phi[l][et];
            const real gz_dot = G[0] * z[0] + G[1] * z[1] + G[2] * z[2];
            gphi[et] = inv * gz_dot;
            real *gze = gz + et * 3;
            for (int c = 0; c < 3; c++) gze[c] = G[c] * ph * inv;
            if (r > TINY_R2) {
                const real f = ph * gz_dot * inv * inv * inv;
                for (int c = 0; c < 3; c++) gze[c] -= z[c] * f;
            }
        }
    }
    real *pre = w->pre[l], *spre = w->spre[l], *u = w->u[l], *su = w->su[l], *g = w->g[l], *sg = w->sg[l];
    real *t1 = w->tA, *gg = w->tB, *gm = w->tC, *t2 = w->tD;
    rows_mul(t1, g, sg, ET); /* act(g) */
    real *dwco = GRAD(base + ESM_COORD_OUT_W);
    for (int q = 0; q < ET; q++) {
        vaxpy(dwco, gphi[q], t1 + (size_t)q * H);
        for (int o = 0; o < H; o++) gg[(size_t)q * H + o] = gphi[q] * wco[o];
    }
    rows_act_back(gg, gg, g, sg, ET);
    rows_sum(GRAD(base + ESM_COORD_IN_B), gg, ET);
    rows_mul(t1, u, su, ET); /* m */
    rows_outer(GRAD(base + ESM_COORD_IN_W), H, gg, t1, H, H, ET);
    if (update_h) { /* m_ij also enters agg_i */
        for (int e = 0; e < E; e++)
            memcpy(gm + (size_t)e * T * H, w->gagg + (size_t)d->row[e] * T * H, sizeof(real) * T * H);
    }
    rows_back(gm, H, P[ESM_COORD_IN_W], H, gg, H, ET, update_h);
    rows_act_back(gm, gm, u, su, ET); /* grad of edge_out's output */
    rows_sum(GRAD(base + ESM_EDGE_OUT_B), gm, ET);
    rows_mul(t2, pre, spre, ET); /* m1 */
    rows_outer(GRAD(base + ESM_EDGE_OUT_W), H, gm, t2, H, H, ET);
    rows_back(gg, H, P[ESM_EDGE_OUT_W], H, gm, H, ET, 0);
    rows_act_back(gg, gg, pre, spre, ET); /* grad of the first layer's output */
    memset(w->gPA, 0, sizeof(real) * NT * H);
    memset(w->gPB, 0, sizeof(real) * NT * H);
    memset(w->gQE, 0, sizeof(real) * E * H);
    real wr[H], dwr[H];
    for (int o = 0; o < H; o++) { wr[o] = We[(size_t)o * ld_e + 2 * H]; dwr[o] = 0; }
    for (int e = 0; e < E; e++) {
        const int i = (int)d->row[e], j = (int)d->col[e];
        for (int t = 0; t < T; t++) {
            const size_t et = (size_t)e * T + t;
            const real *gp = gg + et * H, *z = w->zz[l] + et * 3;
            vadd(w->gPA + ((size_t)i * T + t) * H, gp);
            vadd(w->gPB + ((size_t)j * T + t) * H, gp);
            vadd(w->gQE + (size_t)e * H, gp);
            vaxpy(dwr, w->rr[l][et], gp);
            const real gr = 2 * vdot(wr, gp);
            real *gze = gz + et * 3;
            real *gxi = gx + ((size_t)i * T + t) * 3, *gxj = gx + ((size_t)j * T + t) * 3;
            for (int c = 0; c < 3; c++) {
                const real v = gze[c] + gr * z[c];
                gxi[c] += v;
                gxj[c] -= v;
            }
        }
    }
    for (int o = 0; o < H; o++) dWe[(size_t)o * ld_e + 2 * H] += dwr[o];
    rows_sum(GRAD(base + ESM_EDGE_IN_B), w->gPA, NT);
    rows_outer(dWe, ld_e, w->gPA, h, H, H, NT);
    rows_outer(dWe + H, ld_e, w->gPB, h, H, H, NT);
    rows_back(gh, H, We, ld_e, w->gPA, H, NT, 1);
    rows_back(gh, H, We + H, ld_e, w->gPB, H, NT, 1);
    rows_outer(dWe + 2 * H + 1, ld_e, w->gQE, w->a, K, K, E);
    rows_back(w->ga, K, We + 2 * H + 1, ld_e, w->gQE, K, E, 1);
}

static void edft_backward(const Ctx *cx, Work *w) {
    const Dims *d = cx->d;
    const int N = d->N, E = d->E, K = d->T - 1;
    if (!d->filter) return; /* w_k = 1: nothing learnable before A and c */
    for (int e = 0; e < E; e++) {
        const int i = (int)d->row[e], j = (int)d->col[e];
        real dot = 0;
        for (int k = 0; k < K; k++) dot += w->ga[e * K + k] * w->a[e * K + k];
        for (int k = 0; k < K; k++) {
            const real graw = (w->ga[e * K + k] - dot) / w->Asum[e] * w->S[e * K + k];
            w->gw[i * K + k] += graw * cx->w[j * K + k];
            w->gw[j * K + k] += graw * cx->w[i * K + k];
        }
    }
    for (int n = 0; n < N; n++) {
        real dot = 0;
        for (int k = 0; k < K; k++) dot += w->gc[n * K + k] * w->c[n * K + k];
        for (int k = 0; k < K; k++) w->gw[n * K + k] += (w->gc[n * K + k] - dot) / w->Csum[n] * w->P[n * K + k];
    }
}

static void sample_backward(const Ctx *cx, Work *w, const real *gout /* (N,3) */) {
    const Dims *d = cx->d;
    const int N = d->N, E = d->E, T = d->T, K = T - 1, NT = N * T, L = d->L;
    memset(w->gh, 0, sizeof(real) * NT * H);
    memset(w->gx, 0, sizeof(real) * NT * 3);
    memset(w->ga, 0, sizeof(real) * E * K);
    memset(w->gc, 0, sizeof(real) * N * K);
    const real *x = w->xs[2 * L], *pool = cx->P[P_POOL];
    real *dpool = GRAD(P_POOL);
    real psum = 0;
    for (int t = 0; t < T - 1; t++) psum += pool[t];
    for (int n = 0; n < N; n++) {
        const real *g = gout + n * 3, *xl = x + ((size_t)n * T + T - 1) * 3;
        for (int t = 0; t < T - 1; t++) {
            const real *xt = x + ((size_t)n * T + t) * 3;
            dpool[t] += g[0] * (xt[0] - xl[0]) + g[1] * (xt[1] - xl[1]) + g[2] * (xt[2] - xl[2]);
            for (int c = 0; c < 3; c++) w->gx[((size_t)n * T + t) * 3 + c] = pool[t] * g[c];
        }
        for (int c = 0; c < 3; c++) w->gx[((size_t)n * T + T - 1) * 3 + c] = ((real)1 - psum) * g[c];
    }
    for (int l = L - 1; l >= 0; l--) {
        const int last = l == L - 1;
        if (d->attn) {
            etm_backward(cx, w, l, !last);
            esm_backward(cx, w, l, 1);
        } else {
            esm_backward(cx, w, l, !last);
        }
    }
    for (int q = 0; q < NT * H; q++) w->gh0[q] += w->gh[q];
    edft_backward(cx, w);
}

/* ------------------------------------------------------------------ shared setup */
static int ctx_init(Ctx *cx, const Dims *d, const real *const *P, const int64_t *goff) {
    const int N = d->N, T = d->T, K = T - 1, F = d->F, L = d->L;
    cx->d = d; cx->P = P; cx->goff = goff;
    cx->h0 = (real *)malloc(sizeof(real) * ((size_t)N * T * H + (size_t)N * K));
    cx->lt = (LayerT *)calloc((size_t)L, sizeof(LayerT));
    if (!cx->h0 || !cx->lt) return -1;
    cx->w = cx->h0 + (size_t)N * T * H;
    const real *We = P[P_EMBED_W], *be = P[P_EMBED_B], *emb = P[P_TIME];
    for (int n = 0; n < N; n++)
        for (int t = 0; t < T; t++) {
            real *h = cx->h0 + ((size_t)n * T + t) * H;
            for (int o = 0; o < H; o++) {
                real acc = be[o];
                for (int f = 0; f < F; f++) acc += We[o * F + f] * d->z[n * F + f];
                h[o] = acc + emb[t * H + o];
            }
        }
    for (int n = 0; n < N; n++)
        for (int k = 0; k < K; k++) {
            if (d->filter) {
                const real *h = cx->h0 + ((size_t)n * T + k + 1) * H;
                real acc = P[P_FILTER_B][0];
                for (int o = 0; o < H; o++) acc += P[P_FILTER_W][o] * h[o];
                cx->w[n * K + k] = sigm(acc);
            } else {
                cx->w[n * K + k] = 1;
            }
        }
    const size_t per = (size_t)(H * H) * 9 + (size_t)H * K * 2 + (size_t)(H * H) * 7;
    real *buf = (real *)malloc(sizeof(real) * per * L);
    if (!buf) return -1;
    for (int l = 0; l < L; l++) {
        const real *const *Pl = P + P_GLOBAL + (size_t)l * (ESM_NP + (d->attn ? ETM_NP : 0));
        LayerT *lt = &cx->lt[l];
        real *f = buf + per * l;
#define TAKE(n) (f += (n), f - (n))
        const int ld_e = 2 * H + 1 + K, ld_n = 2 * H + K;
        lt->ea = TAKE(H * H); transpose_cols(lt->ea, Pl[ESM_EDGE_IN_W], ld_e, 0, H);
        lt->eb = TAKE(H * H); transpose_cols(lt->eb, Pl[ESM_EDGE_IN_W], ld_e, H, H);
        lt->ee = TAKE(H * K); transpose_cols(lt->ee, Pl[ESM_EDGE_IN_W], ld_e, 2 * H + 1, K);
        lt->eo = TAKE(H * H); transpose_cols(lt->eo, Pl[ESM_EDGE_OUT_W], H, 0, H);
        lt->na = TAKE(H * H); transpose_cols(lt->na, Pl[ESM_NODE_IN_W], ld_n, 0, H);
        lt->nb = TAKE(H * H); transpose_cols(lt->nb, Pl[ESM_NODE_IN_W], ld_n, H, H);
        lt->nc = TAKE(H * K); transpose_cols(lt->nc, Pl[ESM_NODE_IN_W], ld_n, 2 * H, K);
        lt->no = TAKE(H * H); transpose_cols(lt->no, Pl[ESM_NODE_OUT_W], H, 0, H);
        lt->ci = TAKE(H * H); transpose_cols(lt->ci, Pl[ESM_COORD_IN_W], H, 0, H);
        if (d->attn) {
            const real *const *Pt = Pl + ESM_NP;
            lt->q0 = TAKE(H * H); transpose_cols(lt->q0, Pt[ETM_Q0_W], H, 0, H);
            lt->q2 = TAKE(H * H); transpose_cols(lt->q2, Pt[ETM_Q2_W], H, 0, H);
            lt->k0 = TAKE(H * H); transpose_cols(lt->k0, Pt[ETM_K0_W], H, 0, H);
            lt->k2 = TAKE(H * H); transpose_cols(lt->k2, Pt[ETM_K2_W], H, 0, H);
            lt->v0 = TAKE(H * H); transpose_cols(lt->v0, Pt[ETM_V0_W], H, 0, H);
            lt->v2 = TAKE(H * H); transpose_cols(lt->v2, Pt[ETM_V2_W], H, 0, H);
            lt->c0 = TAKE(H * H); transpose_cols(lt->c0, Pt[ETM_C0_W], H, 0, H);
        }
#undef TAKE
    }
    return 0;
}

static void ctx_free(Ctx *cx) {
    if (cx->lt) free(cx->lt[0].ea);
    free(cx->lt);
    free(cx->h0);
}

static int dims_check(const Dims *d, int np) {
    if (d->B < 0 || d->T < 2 || d->N < 1 || d->E < 0 || d->F < 0 || d->L < 1) return -2;
    if (np != P_GLOBAL + d->L * (ESM_NP + (d->attn ? ETM_NP : 0))) return -2; /* not this model's parameters */
    for (int e = 0; e < d->E; e++)
        if (d->row[e] < 0 || d->row[e] >= d->N || d->col[e] < 0 || d->col[e] >= d->N) return -3;
    return 0;
}

int estag_hidden(void) { return H; }
int estag_real_size(void) { return (int)sizeof(real); }
/* 1 where the kernel sets flush-to-zero / denormals-are-zero in its threads (x86), else 0 */
int estag_flushes_denormals(void) { return FP_FLUSHES; }

/* ------------------------------------------------------------------ threads
 * A batch is cut into CHUNKS contiguous chunks of samples (fewer if B is smaller), each with
 * its own gradient accumulator; threads take chunks in turn, and the accumulators are summed
 * in chunk order.  So the numbers depend on neither the thread count nor timing. */
#define CHUNKS 8

typedef struct {
    const Ctx *cx;
    Work *w;
    const real *x, *gout;
    real *out;
    real *acc;   /* backward: nchunk accumulators of acc_size floats (grad | gw | gh0) */
    size_t acc_size;
    int thread, nthr, nchunk, backward;
} Job;

static void *job_run(void *arg) {
    FP_ENTER;
    const Job *j = (const Job *)arg;
    const Dims *d = j->cx->d;
    const size_t xs = (size_t)d->T * d->N * 3, os = (size_t)d->N * 3;
    real tmp[os];
    for (int c = j->thread; c < j->nchunk; c += j->nthr) {
        if (j->backward) {
            real *a = j->acc + (size_t)c * j->acc_size;
            j->w->grad = a;
            j->w->gw = a + j->acc_size - (size_t)d->N * (d->T - 1) - (size_t)d->N * d->T * H;
            j->w->gh0 = j->w->gw + (size_t)d->N * (d->T - 1);
        }
        const int b1 = (int)((int64_t)d->B * (c + 1) / j->nchunk);
        for (int b = (int)((int64_t)d->B * c / j->nchunk); b < b1; b++) {
            sample_forward(j->cx, j->w, j->x + b * xs, j->backward ? tmp : j->out + b * os);
            if (j->backward) sample_backward(j->cx, j->w, j->gout + b * os);
        }
    }
    FP_LEAVE;
    return 0;
}

static void run_jobs(Job *jobs, int n) {
    pthread_t th[n];
    int started[n];
    for (int i = 1; i < n; i++) started[i] = pthread_create(&th[i], 0, job_run, &jobs[i]) == 0;
    job_run(&jobs[0]);
    for (int i = 1; i < n; i++) {
        if (started[i])
            pthread_join(th[i], 0);
        else
            job_run(&jobs[i]); /* could not start a thread: run its chunk here */
    }
}

static int chunk_count(int B) { return B < 1 ? 1 : (B < CHUNKS ? B : CHUNKS); }
static int thread_count(int threads, int B) {
    const int n = threads > 0 ? threads : 1, c = chunk_count(B);
    return n < c ? n : c;
}

/* out (B, N, 3) from x (B, T, N, 3) */
static int forward_impl(const Dims *d, const real *const *P, int np, const real *x, real *out, int threads) {
    int rc = dims_check(d, np);
    if (rc) return rc;
    Ctx cx;
    memset(&cx, 0, sizeof(cx));
    if (ctx_init(&cx, d, P, 0)) { ctx_free(&cx); return -1; }
    const int nthr = thread_count(threads, d->B);
    Work ws[nthr];
    Job jobs[nthr];
    memset(ws, 0, sizeof(ws));
    int fail = 0;
    for (int i = 0; i < nthr && !fail; i++) fail = work_init(&ws[i], d, 0) != 0;
    if (!fail) {
        for (int i = 0; i < nthr; i++) jobs[i] = (Job){&cx, &ws[i], x, 0, out, 0, 0, i, nthr, chunk_count(d->B), 0};
        run_jobs(jobs, nthr);
    }
    for (int i = 0; i < nthr; i++) work_free(&ws[i]);
    ctx_free(&cx);
    return fail ? -1 : 0;
}

/* grad (flat, gsize) += d sum_b <gout_b, out_b> / d params (each sample's forward pass is rerun
 * first: cheaper than keeping a batch's records, which leave the cache) */
static int backward_impl(const Dims *d, const real *const *P, int np, const int64_t *goff, int64_t gsize,
                         const real *x, const real *gout, real *grad, int threads) {
    int rc = dims_check(d, np);
    if (rc) return rc;
    Ctx cx;
    memset(&cx, 0, sizeof(cx));
    if (ctx_init(&cx, d, P, goff)) { ctx_free(&cx); return -1; }
    const int B = d->B, T = d->T, N = d->N, K = T - 1, F = d->F;
    const int nthr = thread_count(threads, B), nchunk = chunk_count(B);
    const size_t acc_size = (size_t)gsize + (size_t)N * K + (size_t)N * T * H;
    real *acc = (real *)calloc((size_t)nchunk * acc_size, sizeof(real));
    Work ws[nthr];
    Job jobs[nthr];
    memset(ws, 0, sizeof(ws));
    int fail = acc == 0;
    for (int i = 0; i < nthr && !fail; i++) fail = work_init(&ws[i], d, 0) != 0;
    if (!fail) {
        for (int i = 0; i < nthr; i++) jobs[i] = (Job){&cx, &ws[i], x, gout, 0, acc, acc_size, i, nthr, nchunk, 1};
        run_jobs(jobs, nthr);
        for (int c = 1; c < nchunk; c++) /* sum the chunks' accumulators in chunk order */
            for (size_t q = 0; q < acc_size; q++) acc[q] += acc[(size_t)c * acc_size + q];
        Work *w = &ws[0];
        w->grad = acc;
        w->gw = acc + gsize;
        w->gh0 = w->gw + (size_t)N * K;
        /* w_k = sigmoid(filter(h0[:, k+1])) */
        if (d->filter) {
            real *dfw = w->grad + goff[P_FILTER_W], *dfb = w->grad + goff[P_FILTER_B];
            const real *fw = P[P_FILTER_W];
            for (int n = 0; n < N; n++)
                for (int k = 0; k < K; k++) {
                    const real wk = cx.w[n * K + k];
                    const real gzf = w->gw[n * K + k] * wk * ((real)1 - wk);
                    const real *h = cx.h0 + ((size_t)n * T + k + 1) * H;
                    real *gh = w->gh0 + ((size_t)n * T + k + 1) * H;
                    for (int o = 0; o < H; o++) { dfw[o] += gzf * h[o]; gh[o] += gzf * fw[o]; }
                    dfb[0] += gzf;
                }
        }
        /* h0 = embed(z) + time_embed(t) */
        real *dWe = w->grad + goff[P_EMBED_W], *dbe = w->grad + goff[P_EMBED_B], *demb = w->grad + goff[P_TIME];
        for (int n = 0; n < N; n++)
            for (int t = 0; t < T; t++) {
                const real *g = w->gh0 + ((size_t)n * T + t) * H;
                for (int o = 0; o < H; o++) {
                    dbe[o] += g[o];
                    demb[t * H + o] += g[o];
                    for (int f = 0; f < F; f++) dWe[o * F + f] += g[o] * d->z[n * F + f];
                }
            }
        for (int64_t q = 0; q < gsize; q++) grad[q] += w->grad[q];
    }
    free(acc);
    for (int i = 0; i < nthr; i++) work_free(&ws[i]);
    ctx_free(&cx);
    return fail ? -1 : 0;
}

/* The entry points: the whole call, set-up and reductions included, runs under the kernel's own
 * floating-point environment (see FP_ENTER), and the caller's is restored before returning. */
int estag_forward(const Dims *d, const real *const *P, int np, const real *x, real *out, int threads) {
    FP_ENTER;
    const int rc = forward_impl(d, P, np, x, out, threads);
    FP_LEAVE;
    return rc;
}

int estag_backward(const Dims *d, const real *const *P, int np, const int64_t *goff, int64_t gsize,
                   const real *x, const real *gout, real *grad, int threads) {
    FP_ENTER;
    const int rc = backward_impl(d, P, np, goff, gsize, x, gout, grad, threads);
    FP_LEAVE;
    return rc;
}
