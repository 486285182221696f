/* The flash kernels, run by the CPU stand-in runtime, against an fp64 reference: forward (o,
 * lse) and backward (dq, dk, dv), dense, causal, windows, GQA, N != M, strided rows, fp16,
 * hash buckets and QK-drop. Exit status 1 on any failure. */
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "flash.cuh"

using namespace kat_cuda;

namespace {

struct spec {
    int B, H, Hkv, N, M, D, causal, window, nb;
    double drop;
    bool bf16;
    int pad;   /* extra elements per row of every tensor */
};

std::mt19937_64 rng(7);
int failures = 0;

struct tensor {   /* [B, heads, rows, D] in 16 bits with row stride D + pad */
    int B, Hh, R, D, ld;
    std::vector<uint16_t> bits;
    int64_t s0() const { return (int64_t)Hh * R * ld; }
    int64_t s1() const { return (int64_t)R * ld; }
    int64_t at(int b, int h, int r, int d) const { return b * s0() + h * s1() + (int64_t)r * ld + d; }
};

template <typename T>
tensor make(int B, int Hh, int R, int D, int pad, bool random) {
    tensor t{B, Hh, R, D, D + pad, {}};
    t.bits.assign((size_t)B * Hh * R * t.ld, 0x7fc0);   /* NaN padding and poison */
    std::normal_distribution<double> nd;
    if (random)
        for (int b = 0; b < B; b++)
            for (int h = 0; h < Hh; h++)
                for (int r = 0; r < R; r++)
                    for (int d = 0; d < D; d++) t.bits[t.at(b, h, r, d)] = elem<T>::bits((float)nd(rng));
    return t;
}

template <typename T> double val(const tensor &t, int b, int h, int r, int d) {
    return elem<T>::value(t.bits[t.at(b, h, r, d)]);
}

/* max |x - ref| over max |ref| (1 where ref is all zeros) */
struct err {
    double num = 0, den = 0;
    bool bad = false;
    void add(double x, double r) {
        if (!std::isfinite(x) && !(std::isinf(x) && x == r)) bad = true;
        else if (std::isfinite(r)) num = std::max(num, std::fabs(x - r));
        den = std::max(den, std::isfinite(r) ? std::fabs(r) : 0.0);
    }
    double rel() const { return bad ? INFINITY : num / (den > 0 ? den : 1); }
};

template <typename T> void run(const spec &c) {
    const int group = c.H / c.Hkv;
    tensor q = make<T>(c.B, c.H, c.N, c.D, c.pad, true), k = make<T>(c.B, c.Hkv, c.M, c.D, c.pad, true),
           v = make<T>(c.B, c.Hkv, c.M, c.D, c.pad, true), dout = make<T>(c.B, c.H, c.N, c.D, c.pad, true);
    tensor o = make<T>(c.B, c.H, c.N, c.D, c.pad, false), dq = make<T>(c.B, c.H, c.N, c.D, c.pad, false),
           dk = make<T>(c.B, c.Hkv, c.M, c.D, c.pad, false), dv = make<T>(c.B, c.Hkv, c.M, c.D, c.pad, false);
    std::vector<float> lse((size_t)c.B * c.H * c.N, NAN), delta((size_t)c.B * c.H * c.N);
    std::vector<float> dq_acc((size_t)c.B * c.H * c.N * flash_dp(c.D));
    /* bucket ids and their sorted layout */
    const int BH = c.B * c.H;
    std::vector<int> qb, kb, q_rows, q_bkt, q_off, k_rows, k_bkt, k_off;
    auto ids = [&](int rows, std::vector<int> &id) {
        id.resize((size_t)BH * rows);
        std::uniform_real_distribution<double> u;
        for (auto &x : id) x = u(rng) < c.drop ? -1 : (int)(rng() % c.nb);
    };
    auto sort_side = [&](const std::vector<int> &id, int rows, std::vector<int> &row_of,
                         std::vector<int> &bkt, std::vector<int> &off) {
        row_of.resize(id.size());
        bkt.resize(id.size());
        off.assign((size_t)BH * (c.nb + 2), 0);
        for (int bh = 0; bh < BH; bh++) {
            const int *x = &id[(size_t)bh * rows];
            auto key = [&](int i) { return x[i] < 0 ? c.nb : x[i]; };
            int *r = &row_of[(size_t)bh * rows];
            std::iota(r, r + rows, 0);
            std::stable_sort(r, r + rows, [&](int a, int b) { return key(a) < key(b); });
            int *o = &off[(size_t)bh * (c.nb + 2)];
            for (int i = 0; i < rows; i++) {
                bkt[(size_t)bh * rows + i] = key(r[i]);
                o[key(r[i]) + 1]++;
            }
            for (int b = 0; b < c.nb + 1; b++) o[b + 1] += o[b];
        }
    };
    flash_params p{};
    if (c.nb) {
        ids(c.N, qb);
        ids(c.M, kb);
        sort_side(qb, c.N, q_rows, q_bkt, q_off);
        sort_side(kb, c.M, k_rows, k_bkt, k_off);
        p.q_bucket = qb.data();
        p.k_bucket = kb.data();
        p.L = bucket_layout{c.nb, q_rows.data(), q_bkt.data(), q_off.data(),
                            k_rows.data(), k_bkt.data(), k_off.data()};
    }
    p.q = q.bits.data(); p.k = k.bits.data(); p.v = v.bits.data(); p.o = o.bits.data();
    p.lse = lse.data();
    const tensor *views[] = {&q, &k, &v, &o};
    int64_t *strides[] = {p.qs, p.ks, p.vs, p.os};
    for (int i = 0; i < 4; i++) {
        strides[i][0] = views[i]->s0();
        strides[i][1] = views[i]->s1();
        strides[i][2] = views[i]->ld;
    }
    p.B = c.B; p.H = c.H; p.Hkv = c.Hkv; p.N = c.N; p.M = c.M; p.D = c.D;
    const double scale = 1.0 / std::sqrt((double)c.D);
    p.scale = (float)scale;
    p.scale_log2 = (float)(scale * 1.4426950408889634);
    p.causal = c.causal;
    p.window = c.window;
    p.dout = dout.bits.data(); p.dq = dq.bits.data(); p.dk = dk.bits.data(); p.dv = dv.bits.data();
    const tensor *gviews[] = {&dout, &dq, &dk, &dv};
    int64_t *gstrides[] = {p.dos, p.dqs, p.dks, p.dvs};
    for (int i = 0; i < 4; i++) {
        gstrides[i][0] = gviews[i]->s0();
        gstrides[i][1] = gviews[i]->s1();
        gstrides[i][2] = gviews[i]->ld;
    }
    p.dq_acc = dq_acc.data();
    p.delta = delta.data();
    const int is_bf16 = std::is_same<T, __nv_bfloat16>::value;
    if (launch_flash_forward(p, is_bf16, nullptr) || launch_flash_backward(p, is_bf16, nullptr)) {
        printf("FAIL launch\n");
        failures++;
        return;
    }

    /* fp64 reference */
    err eo, el, edq, edk, edv;
    std::vector<double> gk((size_t)c.M * c.D), gv((size_t)c.M * c.D);
    for (int b = 0; b < c.B; b++)
        for (int hk = 0; hk < c.Hkv; hk++) {
            std::fill(gk.begin(), gk.end(), 0.0);
            std::fill(gv.begin(), gv.end(), 0.0);
            for (int h = hk * group; h < (hk + 1) * group; h++) {
                const int bh = b * c.H + h;
                for (int i = 0; i < c.N; i++) {
                    std::vector<double> s(c.M, -INFINITY);
                    double mx = -INFINITY;
                    const int ip = i + c.M - c.N;
                    for (int j = 0; j < c.M; j++) {
                        bool ok = (!c.causal || j <= ip) && (!c.window || std::abs(ip - j) < c.window);
                        if (c.nb) ok = ok && qb[(size_t)bh * c.N + i] >= 0 &&
                                       qb[(size_t)bh * c.N + i] == kb[(size_t)bh * c.M + j];
                        if (!ok) continue;
                        double x = 0;
                        for (int d = 0; d < c.D; d++) x += val<T>(q, b, h, i, d) * val<T>(k, b, hk, j, d);
                        s[j] = x * scale;
                        mx = std::max(mx, s[j]);
                    }
                    double sum = 0;
                    for (int j = 0; j < c.M; j++) sum += s[j] == -INFINITY ? 0 : std::exp(s[j] - mx);
                    std::vector<double> P(c.M, 0.0), ov(c.D, 0.0), dP(c.M, 0.0);
                    for (int j = 0; j < c.M; j++)
                        if (s[j] != -INFINITY) P[j] = std::exp(s[j] - mx) / sum;
                    double dl = 0;
                    for (int d = 0; d < c.D; d++) {
                        for (int j = 0; j < c.M; j++) ov[d] += P[j] * val<T>(v, b, hk, j, d);
                        eo.add(val<T>(o, b, h, i, d), ov[d]);
                        dl += ov[d] * val<T>(dout, b, h, i, d);
                    }
                    el.add(lse[(size_t)bh * c.N + i], sum > 0 ? mx + std::log(sum) : -INFINITY);
                    std::vector<double> gq(c.D, 0.0);
                    for (int j = 0; j < c.M; j++) {
                        if (P[j] == 0) continue;
                        double x = 0;
                        for (int d = 0; d < c.D; d++) x += val<T>(dout, b, h, i, d) * val<T>(v, b, hk, j, d);
                        const double ds = P[j] * (x - dl);
                        for (int d = 0; d < c.D; d++) {
                            gq[d] += ds * scale * val<T>(k, b, hk, j, d);
                            gk[(size_t)j * c.D + d] += ds * scale * val<T>(q, b, h, i, d);
                            gv[(size_t)j * c.D + d] += P[j] * val<T>(dout, b, h, i, d);
                        }
                    }
                    for (int d = 0; d < c.D; d++) edq.add(val<T>(dq, b, h, i, d), gq[d]);
                }
            }
            for (int j = 0; j < c.M; j++)
                for (int d = 0; d < c.D; d++) {
                    edk.add(val<T>(dk, b, hk, j, d), gk[(size_t)j * c.D + d]);
                    edv.add(val<T>(dv, b, hk, j, d), gv[(size_t)j * c.D + d]);
                }
        }
    const double tol = c.bf16 ? 2e-2 : 4e-3;
    const bool ok = eo.rel() < tol && el.rel() < tol && edq.rel() < tol && edk.rel() < tol &&
                    edv.rel() < tol;
    if (!ok) failures++;
    printf("%s B=%d H=%d Hkv=%d N=%d M=%d D=%d causal=%d window=%d nb=%d drop=%.2f %s pad=%d: "
           "o %.2g lse %.2g dq %.2g dk %.2g dv %.2g\n",
           ok ? "ok  " : "FAIL", c.B, c.H, c.Hkv, c.N, c.M, c.D, c.causal, c.window, c.nb, c.drop,
           c.bf16 ? "bf16" : "fp16", c.pad, eo.rel(), el.rel(), edq.rel(), edk.rel(), edv.rel());
    fflush(stdout);
}

struct search_args {
    const int *a;
    int lo, hi, x;
    int *out;
};

void search_kernel(search_args s) {
    const int r = block_upper_bound<128>(s.a, s.lo, s.hi, s.x);
    if (threadIdx.x == 0) *s.out = r;
    else if (r != *s.out && *s.out >= 0) *s.out = -2;   /* threads disagree */
}

/* block_upper_bound against std::upper_bound on ascending arrays with repeats */
void check_search() {
    int bad = 0;
    for (int n : {0, 1, 2, 127, 128, 129, 1000, 16384, 16385, 40000}) {
        std::vector<int> a(n);
        int v = 0;
        for (int &x : a) x = v += (int)(rng() % 3);
        for (int trial = 0; trial < 6; trial++) {
            const int lo = n ? (int)(rng() % (n / 2 + 1)) : 0, hi = n - (n ? (int)(rng() % (n / 4 + 1)) : 0);
            const int x = (int)(rng() % (v + 3)) - 1;
            int got = -1;
            emu::launch(search_kernel, emu::cfg{dim3(1), dim3(128), 0, nullptr},
                        search_args{a.data(), lo, std::max(lo, hi), x, &got});
            const int want = (int)(std::upper_bound(a.begin() + lo, a.begin() + std::max(lo, hi), x) - a.begin());
            if (got != want) {
                printf("FAIL block_upper_bound n=%d [%d, %d) x=%d: %d, want %d\n", n, lo, hi, x, got, want);
                bad++;
            }
        }
    }
    if (bad) failures++;
    else printf("ok   block_upper_bound\n");
}

} // namespace

int main(int argc, char **argv) {
    const bool quick = argc > 1 && !strcmp(argv[1], "--quick");
    std::vector<spec> cases = {
        /* B H Hkv N M D causal window nb drop bf16 pad */
        {1, 1, 1, 1, 1, 64, 1, 0, 0, 0, true, 0},
        {1, 2, 2, 130, 130, 64, 1, 0, 0, 0, true, 0},
        {1, 2, 1, 97, 150, 64, 1, 0, 0, 0, true, 8},
        {2, 1, 1, 200, 200, 64, 0, 0, 0, 0, false, 0},
        {1, 1, 1, 300, 300, 64, 1, 70, 0, 0, true, 0},
        {1, 2, 2, 260, 260, 64, 1, 0, 3, 0.1, true, 0},
        {1, 2, 2, 333, 333, 64, 1, 0, 1, 0.5, true, 0},
        {1, 1, 1, 150, 150, 64, 0, 0, 4, 0.3, true, 0},
        {1, 2, 1, 140, 140, 128, 1, 0, 0, 0, true, 0},
        {1, 1, 1, 100, 100, 96, 1, 0, 2, 0.2, false, 0},
    };
    if (!quick) {
        cases.push_back({1, 1, 1, 700, 700, 64, 1, 0, 1, 0.5, true, 0});
        cases.push_back({1, 1, 1, 517, 517, 64, 1, 0, 0, 0, true, 0});
        cases.push_back({1, 1, 1, 400, 300, 128, 1, 0, 0, 0, true, 0});
    }
    check_search();
    for (const spec &c : cases) {
        if (c.bf16) run<__nv_bfloat16>(c);
        else run<__half>(c);
    }
    printf("%s: %d failure%s\n", failures ? "FAIL" : "ok", failures, failures == 1 ? "" : "s");
    return failures ? 1 : 0;
}
