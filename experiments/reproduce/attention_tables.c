/* Attention tables of the report, like the papers': the dense kernel's rate against the sgemm
 * rate, the speed-ups of the sparse modes over dense causal flash against N, the crossover of
 * linear attention (the errors against fp64 are in attention_errors.c). All timings use the
 * modes of `kat bench attn` (experiments/attn_modes.def), so the report and the CLI agree. */
#include <math.h>
#include <stdio.h>
#include <string.h>
#include "../attn_cli.h"
#include "../gnuplot.h"
#include "reproduce.h"

/* The fraction of a grid of doubling N done at point i, `within` of the way through it: the
 * work of attention grows as N^2, so point i weighs 4^i. */
static double grid_done(size_t i, double within, size_t npoints)
{
    double before = 0.0, all = 0.0, w = 1.0;
    for (size_t j = 0; j < npoints; j++, w *= 4.0) {
        before += j < i ? w : j == i ? w * within : 0.0;
        all += w;
    }
    return before / all;
}

/* Median ms of one mode on seeded random tensors ([1, H, N, D], M = N). flops (may be NULL)
 * receives the mode's FLOP count. Returns 0 or -1 (the error is reported). */
static int bench_mode(repro *R, const char *mode, const char *params, size_t H, size_t N,
                      size_t D, int causal, int backward, int reps, double *ms, double *flops)
{
    attn_opts o;
    memset(&o, 0, sizeof o);
    o.mode = mode;
    o.params = params;
    o.B = 1;
    o.H = H;
    o.N = N;
    o.M = N;
    o.D = D;
    o.causal = causal;
    o.backward = backward;
    o.seed = R->seed;
    const attn_mode *m = attn_mode_find("reproduce", mode);
    attn_tensors t;
    attn_bench_call call;
    memset(&call, 0, sizeof call);
    kat_status st = m ? attn_tensors_random(&o, backward, &t) : KAT_EINVAL;
    if (st) {
        report_printf(&R->rep, "**%s %s failed:** %s: %s\n\n", mode, params ? params : "",
                      kat_strerror(st), kat_last_error());
        repro_note(R, "%s %s failed: %s: %s", mode, params ? params : "", kat_strerror(st),
                   kat_last_error());
        return -1;
    }
    if (backward)
        st = kat_attn_dense_forward(&t.q, &t.k, &t.v, &t.o, &t.lse, causal, 0.0);
    if (!st)
        st = m->bench(&o, &t, &call);
    if (!st)
        st = attn_time_median(&call, 1, reps, ms, NULL);
    if (flops)
        *flops = call.flops > 0 ? call.flops : attn_dense_flops(&t.desc, backward);
    if (call.cleanup)
        call.cleanup(call.ctx);
    attn_tensors_free(&t);
    if (st) {
        report_printf(&R->rep, "**%s %s failed:** %s: %s\n\n", mode, params ? params : "",
                      kat_strerror(st), kat_last_error());
        repro_note(R, "%s %s failed: %s: %s", mode, params ? params : "", kat_strerror(st),
                   kat_last_error());
        R->failures++;
        return -1;
    }
    return 0;
}

/* The unfused baseline (sgemm -> softmax -> sgemm) on the same shape and seed. */
typedef struct {
    attn_tensors *t;
    int backward;
} unfused_ctx;

static kat_status unfused_once(void *ctx)
{
    unfused_ctx *u = ctx;
    attn_tensors *t = u->t;
    if (!u->backward)
        return kat_attn_unfused_forward(&t->desc, &t->q, &t->k, &t->v, &t->o, &t->lse);
    return kat_attn_unfused_backward(&t->desc, &t->q, &t->k, &t->v, &t->o, &t->dout, &t->dq,
                                     &t->dk, &t->dv);
}

static double bench_unfused(repro *R, size_t H, size_t N, size_t D, int causal, int backward,
                            int reps)
{
    attn_opts o;
    memset(&o, 0, sizeof o);
    o.B = 1;
    o.H = H;
    o.N = o.M = N;
    o.D = D;
    o.causal = causal;
    o.seed = R->seed;
    attn_tensors t;
    double ms = NAN;
    if (attn_tensors_random(&o, backward, &t))
        return NAN;
    unfused_ctx u = {&t, backward};
    attn_bench_call call = {.fn = unfused_once, .ctx = &u};
    if ((backward && kat_attn_dense_forward(&t.q, &t.k, &t.v, &t.o, &t.lse, causal, 0.0)) ||
        attn_time_median(&call, 1, reps, &ms, NULL))
        ms = NAN;
    attn_tensors_free(&t);
    return ms;
}

/* ---- the dense kernel against the machine ------------------------------------------------ */

int repro_dense_rate(repro *R)
{
    const size_t N = R->quick ? 2048 : 4096, H = 8;
    const int reps = R->quick ? 2 : 3, T = kat_num_threads();
    static const struct {
        size_t D;
        int causal, backward;
    } rows[] = {{64, 0, 0}, {128, 0, 0}, {64, 1, 0}, {64, 0, 1}, {64, 1, 1}};
    enum { NROWS = sizeof rows / sizeof rows[0] };
    double table[NROWS][5];
    for (size_t i = 0; i < NROWS; i++) {
        repro_progress(R, (double)i / NROWS, "%s D = %zu%s", rows[i].backward ? "backward"
                       : "forward", rows[i].D, rows[i].causal ? " causal" : "");
        double ms, flops;
        if (bench_mode(R, "dense", NULL, H, N, rows[i].D, rows[i].causal, rows[i].backward, reps,
                       &ms, &flops))
            return -1;
        table[i][0] = (double)rows[i].D;
        table[i][1] = ms;
        table[i][2] = flops / (ms * 1e6);
        table[i][4] = bench_unfused(R, H, N, rows[i].D, rows[i].causal, rows[i].backward, reps);
    }
    /* The sgemm reference was measured before these rows and is measured again now; a
     * percentage is quoted only when the two agree within the tolerance. */
    timing_end(&R->tc);
    double sgemm = timing_reference(&R->tc);
    char warning[512], rate[32] = "—";
    timing_warning(&R->tc, warning, sizeof warning);
    if (sgemm > 0)
        snprintf(rate, sizeof rate, "%.1f", sgemm);
    report_printf(&R->rep,
                  "## Dense flash attention\n\n"
                  "B = 1, H = %zu, N = M = %zu, fp32, %d threads, ISA %s. FLOPs: 4·B·H·N·M·D "
                  "forward, half of it causal, ×2.5 for the backward. Unfused: sgemm → softmax "
                  "→ sgemm through the same OpenBLAS. ", H, N, T, kat_arch_name());
    if (sgemm > 0) {
        report_printf(&R->rep, "The sgemm rate (cblas_sgemm %d³, same threads, measured before "
                      "and after the table in this run; the higher of the two): **%s "
                      "GFLOP/s**.\n\n", REPRO_SGEMM_N, rate);
    } else {   /* say why, print no ratio */
        report_printf(&R->rep, "\n\n**No %% of sgemm:** %s; the %% of sgemm column is left "
                      "empty.\n\n", warning);
        R->failures += !(R->tc.sgemm_before > 0 && R->tc.sgemm_after > 0);
    }
    report_table_header(&R->rep, "pass|D|mask|flash ms|GFLOP/s|% of sgemm|unfused ms|speed-up");
    for (size_t i = 0; i < NROWS; i++) {
        double ms = table[i][1], gf = table[i][2], base_ms = table[i][4];
        table[i][3] = timing_share(&R->tc, gf);   /* NaN: an empty CSV field */
        /* A reference that did not run leaves its cells as "—", never 0, nan or inf. */
        char pct[32] = "—", base[32] = "—", speedup[32] = "—";
        if (isfinite(table[i][3]))
            snprintf(pct, sizeof pct, "%.0f%%", table[i][3]);
        if (isfinite(base_ms)) {
            snprintf(base, sizeof base, "%.1f", base_ms);
            snprintf(speedup, sizeof speedup, "%.2f×", base_ms / ms);
        } else {
            R->failures++;
        }
        report_table_row(&R->rep, "%s|%zu|%s|%.1f|%.1f|%s|%s|%s",
                         rows[i].backward ? "backward" : "forward", rows[i].D,
                         rows[i].causal ? "causal" : "none", ms, gf, pct, base, speedup);
    }
    report_printf(&R->rep, "\n");
    for (size_t i = 0; i < NROWS; i++)
        if (sgemm > 0 && !isfinite(table[i][3])) {
            timing_share_warning(&R->tc, table[i][2], warning, sizeof warning);
            report_printf(&R->rep, "**No %% of sgemm in row %zu:** %s.\n\n", i + 1, warning);
        }
    for (size_t i = 0; i < NROWS; i++)
        if (!isfinite(table[i][4]))
            report_printf(&R->rep, "The unfused baseline of row %zu could not run (no memory "
                          "for its N × N scores?): its cells are \"—\".\n\n", i + 1);
    report_csv(&R->rep, "dense_rate.csv", "D,ms,gflops,pct_sgemm,unfused_ms", &table[0][0], NROWS,
               5);
    if (isfinite(table[0][3]) && isfinite(table[3][3]))
        repro_note(R, "dense flash: forward D = 64 at %.0f%% of sgemm (%.0f GFLOP/s), backward "
                   "%.0f%%", table[0][3], sgemm, table[3][3]);
    else if (sgemm > 0)
        repro_note(R, "dense flash: forward D = 64 at %.1f GFLOP/s, backward %.1f GFLOP/s (no "
                   "%% of sgemm: above the %.1f GFLOP/s of the sgemm reference, see the report)",
                   table[0][2], table[3][2], sgemm);
    else
        repro_note(R, "dense flash: forward D = 64 at %.1f GFLOP/s, backward %.1f GFLOP/s (no "
                   "%% of sgemm: %s)", table[0][2], table[3][2],
                   R->tc.sgemm_before > 0 && R->tc.sgemm_after > 0 ? "the reference moved"
                                                                   : "no reference");
    return 0;
}

/* ---- sparse speed-ups against N ---------------------------------------------------------- */

int repro_sparse_speedups(repro *R)
{
    const size_t full_ns[] = {2048, 4096, 8192, 16384}, quick_ns[] = {1024, 2048, 4096};
    const size_t *ns = R->quick ? quick_ns : full_ns, nn = R->quick ? 3 : 4, H = 8, D = 64;
    static const struct {
        const char *mode, *params, *label;
    } cfg[] = {{"qk", "drop=0.5", "QK-drop 50%"},    {"qk", "drop=0.7", "QK-drop 70%"},
               {"hash", "buckets=2", "hash nb = 2"}, {"hash", "buckets=16", "hash nb = 16"},
               {"hash", "buckets=64", "hash nb = 64"}, {"window", "window=512", "window 512"}};
    enum { NCFG = sizeof cfg / sizeof cfg[0] };
    double rows[4][1 + NCFG];
    report_printf(&R->rep,
                  "## Sparse flash attention: speed-up over dense causal flash\n\n"
                  "Forward + backward, B = 1, H = %zu, D = %zu, causal on original positions; "
                  "the sparse time includes sorting, gathering and scattering. Speed-up = dense "
                  "causal time / sparse time, both measured in this run (Pagliardini et al., "
                  "arXiv 2306.01160, report 2.3× for 50%% QK-drop and 2.2–2.7× for hashing on "
                  "an A100).\n\n", H, D);
    char head[512] = "N|dense causal ms";
    for (size_t c = 0; c < NCFG; c++) {
        size_t len = strlen(head);
        snprintf(head + len, sizeof head - len, "|%s", cfg[c].label);
    }
    report_table_header(&R->rep, head);
    int reps = R->quick ? 1 : 2;
    for (size_t i = 0; i < nn; i++) {
        double f, b, dense;
        repro_progress(R, grid_done(i, 0.0, nn), "N = %zu, dense causal", ns[i]);
        if (bench_mode(R, "dense", NULL, H, ns[i], D, 1, 0, reps, &f, NULL) ||
            bench_mode(R, "dense", NULL, H, ns[i], D, 1, 1, reps, &b, NULL))
            return -1;
        dense = f + b;
        rows[i][0] = (double)ns[i];
        char line[512];
        int len = snprintf(line, sizeof line, "%zu|%.1f", ns[i], dense);
        for (size_t c = 0; c < NCFG; c++) {
            double sf, sb;
            repro_progress(R, grid_done(i, (double)(c + 1) / (NCFG + 1), nn), "N = %zu, %s",
                           ns[i], cfg[c].label);
            if (bench_mode(R, cfg[c].mode, cfg[c].params, H, ns[i], D, 1, 0, reps, &sf, NULL) ||
                bench_mode(R, cfg[c].mode, cfg[c].params, H, ns[i], D, 1, 1, reps, &sb, NULL))
                return -1;
            rows[i][1 + c] = dense / (sf + sb);
            len += snprintf(line + len, sizeof line - (size_t)len, "|%.2f×", rows[i][1 + c]);
        }
        report_table_row(&R->rep, "%s", line);
    }
    report_printf(&R->rep, "\n");
    char header[512] = "N";
    for (size_t c = 0; c < NCFG; c++) {
        size_t len = strlen(header);
        snprintf(header + len, sizeof header - len, ",%s", cfg[c].label);
    }
    report_csv(&R->rep, "sparse_speedups.csv", header, &rows[0][0], nn, 1 + NCFG);
    /* The y range reaches below 1 so the no-speed-up line is never hidden by the frame. */
    char script[2048];
    int len = snprintf(script, sizeof script,
                       "set logscale x 2\nset logscale y\nset yrange [*<0.8:*]\n"
                       "set xlabel 'N (= M, sequence length)'\n"
                       "set ylabel 'speed-up over dense causal flash (fwd + bwd time ratio)'\n"
                       "set title 'sparse flash attention: causal, fwd + bwd, B = 1, H = %zu, "
                       "D = %zu, fp32, %d threads'\nplot ", H, D, kat_num_threads());
    for (size_t c = 0; c < NCFG; c++)
        len += snprintf(script + len, sizeof script - (size_t)len,
                        "'sparse_speedups.csv' using 1:%zu with linespoints lw 2 lc rgb %s "
                        "title '%s', ", c + 2, gnuplot_color(c), cfg[c].label);
    snprintf(script + len, sizeof script - (size_t)len,
             "1 with lines dt 2 lc 'gray' title '1 (no speed-up)'\n");
    report_plot(&R->rep, "sparse_speedups.png", "Sparse speed-ups over dense causal flash", script);
    repro_note(R, "sparse at N = %.0f: QK-drop 50%% %.2fx, hash nb = 16 %.2fx, window 512 %.2fx",
               rows[nn - 1][0], rows[nn - 1][1], rows[nn - 1][4], rows[nn - 1][6]);
    return 0;
}

/* ---- linear attention: the crossover ------------------------------------------------------ */

int repro_linear_crossover(repro *R)
{
    const size_t full_ns[] = {1024, 2048, 4096, 8192, 16384}, quick_ns[] = {512, 1024, 2048, 4096};
    const size_t *ns = R->quick ? quick_ns : full_ns, nn = R->quick ? 4 : 5, H = 8;
    const size_t ds[] = {32, 64};
    double rows[5][5];
    report_printf(&R->rep,
                  "## Linear attention: where it overtakes dense flash\n\n"
                  "Causal forward, B = 1, H = %zu, Taylor-2 feature map (FAST's Fastmax, arXiv "
                  "2402.07901: exp(x) ≈ 1 + x + x²/2 on per-token normalised q, k; dimension "
                  "1 + d + d(d+1)/2) in kat's chunked linear engine, against kat's dense causal "
                  "flash on the same tensors.\n\n", H);
    report_table_header(&R->rep, "N|flash ms, D = 32|Taylor-2 ms, D = 32|flash ms, D = 64|"
                        "Taylor-2 ms, D = 64");
    size_t cross[2] = {0, 0};
    for (size_t i = 0; i < nn; i++) {
        rows[i][0] = (double)ns[i];
        for (size_t k = 0; k < 2; k++) {
            double fl, li;
            repro_progress(R, grid_done(i, 0.5 * (double)k, nn), "N = %zu, D = %zu", ns[i],
                           ds[k]);
            if (bench_mode(R, "dense", NULL, H, ns[i], ds[k], 1, 0, 2, &fl, NULL) ||
                bench_mode(R, "linear", "map=taylor2,flash=0", H, ns[i], ds[k], 1, 0, 2, &li,
                           NULL))
                return -1;
            rows[i][1 + 2 * k] = fl;
            rows[i][2 + 2 * k] = li;
            /* The crossover: the first N from which Taylor-2 stays no slower to the end of
             * the grid (one noisy win at a small N followed by losses is not a crossover). */
            if (li > fl)
                cross[k] = 0;
            else if (!cross[k])
                cross[k] = ns[i];
        }
        report_table_row(&R->rep, "%zu|%.2f|%.2f|%.2f|%.2f", ns[i], rows[i][1], rows[i][2],
                         rows[i][3], rows[i][4]);
    }
    /* A crossover beyond the grid is said as such, never printed as N = 0. */
    char where[2][64];
    for (size_t k = 0; k < 2; k++)
        if (cross[k])
            snprintf(where[k], sizeof where[k], "N = %zu", cross[k]);
        else
            snprintf(where[k], sizeof where[k], "no crossover up to N = %zu", ns[nn - 1]);
    report_printf(&R->rep, "\nCrossover (the first N of the grid from which Taylor-2 is no "
                  "slower up to its end): D = 32: %s; D = 64: %s.\n\n", where[0], where[1]);
    report_csv(&R->rep, "linear_crossover.csv",
               "N,flash_ms_d32,taylor2_ms_d32,flash_ms_d64,taylor2_ms_d64", &rows[0][0], nn, 5);
    /* One color per D, solid flash and dashed Taylor-2: the crossover is where a dashed
     * curve passes under the solid one of its color. */
    char script[2048];
    snprintf(script, sizeof script,
             "set logscale xy 2\nset xlabel 'N (= M, sequence length)'\n"
             "set ylabel 'causal forward time, ms (median)'\n"
             "set title 'Taylor-2 linear attention vs dense flash: causal forward, B = 1, "
             "H = %zu, fp32, %d threads'\n"
             "plot 'linear_crossover.csv' using 1:2 with linespoints lw 2 pt 7 lc rgb %s "
             "title 'flash D=32', '' using 1:3 with linespoints lw 2 dt 2 pt 4 lc rgb %s "
             "title 'Taylor-2 D=32', '' using 1:4 with linespoints lw 2 pt 7 lc rgb %s "
             "title 'flash D=64', '' using 1:5 with linespoints lw 2 dt 2 pt 4 lc rgb %s "
             "title 'Taylor-2 D=64'\n", H, kat_num_threads(), gnuplot_color(0),
             gnuplot_color(0), gnuplot_color(1), gnuplot_color(1));
    report_plot(&R->rep, "linear_crossover.png", "Taylor-2 linear attention against dense flash",
                script);
    repro_note(R, "linear Taylor-2 against flash (the N from which it is no slower): D = 32: %s; "
               "D = 64: %s", where[0], where[1]);
    return 0;
}
