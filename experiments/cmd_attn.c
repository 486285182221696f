/* `kat attn run|grad`: attention on .npy tensors. q, k, v are [B, H, N, D], [H, N, D] or
 * [N, D] arrays (float32 or float64; k and v may have fewer heads: grouped-query attention);
 * outputs are float32 in the same layout (the logsumexp without the last axis). */
#include <string.h>
#include "attn_cli.h"
#include "progress.h"

static const char *const usage_text =
    "usage: kat attn run  --q Q.npy --k K.npy --v V.npy --o O.npy [--lse L.npy] [--causal]\n"
    "                     [--scale S] [--mode M] [--params K=V,..] [--seed S] [--json]\n"
    "       kat attn grad --q Q.npy --k K.npy --v V.npy --do dO.npy --dq dQ.npy --dk dK.npy\n"
    "                     --dv dV.npy [--o O.npy] [--lse L.npy] [--precise] [--causal] ...\n"
    "\n"
    "Arrays are [B, H, N, D], [H, N, D] or [N, D] (k, v: M keys, H_kv heads dividing H;\n"
    "v, do, o and dv: the values' own last dimension D_v, which may differ from D).\n"
    "With --causal query i sees key j <= i + M - N. grad runs the forward first (its o and\n"
    "lse are written when --o / --lse are given), then the backward.";

/* A loaded array and its view. */
typedef struct {
    kat_array a;
    int ndim;
} loaded;

static int load(const char *path, const char *what, loaded *l, kat_tensor *t)
{
    memset(l, 0, sizeof *l);
    kat_status st = kat_npy_read(path, &l->a);
    if (st)
        return cli_fail("attn", what, st);
    if (l->a.ndim < 2 || l->a.ndim > 4) {
        fprintf(stderr, "kat attn: %s: '%s' has %d dimensions; expected [B, H, N, D], [H, N, D] "
                        "or [N, D]\n", what, path, l->a.ndim);
        kat_array_free(&l->a);
        return CLI_FAIL;
    }
    if (l->a.dtype != KAT_DTYPE_F32 && l->a.dtype != KAT_DTYPE_F64) {
        fprintf(stderr, "kat attn: %s: '%s' holds %s values; q, k, v and do must be float32 or "
                        "float64\n", what, path, kat_dtype_name(l->a.dtype));
        kat_array_free(&l->a);
        return CLI_FAIL;
    }
    if (l->a.dtype == KAT_DTYPE_F64) {   /* to float32 */
        size_t n = kat_array_size(&l->a);
        float *f = kat_malloc((n ? n : 1) * sizeof(float));   /* n fits: the file held it */
        if (!f) {
            kat_array_free(&l->a);
            return cli_fail("attn", what, KAT_ENOMEM);
        }
        for (size_t i = 0; i < n; i++)
            f[i] = (float)((double *)l->a.data)[i];
        kat_free(l->a.data);
        l->a.data = f;
        l->a.dtype = KAT_DTYPE_F32;
    }
    l->ndim = l->a.ndim;
    size_t s[4] = {1, 1, 1, 1};
    for (int i = 0; i < l->a.ndim; i++)
        s[4 - l->a.ndim + i] = l->a.shape[i];
    *t = kat_tensor_view(l->a.data, s[0], s[1], s[2], s[3]);
    return CLI_OK;
}

/* A float32 output shaped like `like` (drop_last: without the last axis), viewed as t. */
static int make_output(const loaded *like, const kat_tensor *shape, int drop_last,
                       const char *what, loaded *l, kat_tensor *t)
{
    memset(l, 0, sizeof *l);
    l->ndim = like->ndim - (drop_last ? 1 : 0);
    size_t full[4] = {shape->B, shape->H, shape->N, drop_last ? 1 : shape->D};
    size_t dims[4];
    for (int i = 0; i < l->ndim; i++)
        dims[i] = full[4 - (drop_last ? 1 : 0) - l->ndim + i];
    kat_status st = kat_array_alloc(KAT_DTYPE_F32, l->ndim, dims, &l->a);
    if (st)
        return cli_fail("attn", what, st);
    *t = kat_tensor_view(l->a.data, full[0], full[1], full[2], full[3]);
    return CLI_OK;
}

/* One call of the mode, with the time so far on a terminal from its first second on. */
static kat_status run_call(const attn_mode *mode, attn_opts *o, attn_tensors *t, int backward)
{
    progress call;
    progress_call_start(&call, stderr, "kat attn", o->json, "%s %s, N = %zu", o->mode,
                        backward ? "backward" : "forward", t->desc.N);
    kat_status st = mode->run(o, t, backward);
    progress_finish(&call);
    return st;
}

/* The outputs, opened before any work (a directory that is missing or not writable fails
 * then) as temporary files, and renamed into place together once all are written. */
enum { OUT_O, OUT_LSE, OUT_DQ, OUT_DK, OUT_DV, NOUT };
static const char *const out_names[NOUT] = {"o", "lse", "dq", "dk", "dv"};

static int save(kat_outfile *file, const char *what, const loaded *l)
{
    kat_status st = file ? kat_npy_write_outfile(file, &l->a) : KAT_OK;
    return st ? cli_fail("attn", what, st) : CLI_OK;
}

int kat_cmd_attn(int argc, char **argv)
{
    attn_opts o;
    memset(&o, 0, sizeof o);
    o.mode = "dense";
    const char *fq = NULL, *fk = NULL, *fv = NULL, *fo = NULL, *fl = NULL, *fdo = NULL;
    const char *fdq = NULL, *fdk = NULL, *fdv = NULL;
    char mode_help[300];
    snprintf(mode_help, sizeof mode_help, "M      %s (default dense)", attn_mode_names());
    const cli_opt base_opts[] = {
        {"q", CLI_STR, &fq, "FILE   queries", NULL},
        {"k", CLI_STR, &fk, "FILE   keys", NULL},
        {"v", CLI_STR, &fv, "FILE   values", NULL},
        {"o", CLI_STR, &fo, "FILE   output (run: required)", NULL},
        {"lse", CLI_STR, &fl, "FILE   logsumexp output (not in the linear mode: no softmax)",
         NULL},
        {"do", CLI_STR, &fdo, "FILE   grad: dL/do", NULL},
        {"dq", CLI_STR, &fdq, "FILE   grad: dL/dq output", NULL},
        {"dk", CLI_STR, &fdk, "FILE   grad: dL/dk output", NULL},
        {"dv", CLI_STR, &fdv, "FILE   grad: dL/dv output", NULL},
        {"causal", CLI_FLAG, &o.causal, "       causal mask (bottom-right aligned)", NULL},
        {"scale", CLI_DOUBLE, &o.scale, "S      softmax scale (default 1/sqrt(D))", NULL},
        {"mode", CLI_STR, &o.mode, mode_help, NULL},
        {"params", CLI_STR, &o.params, "K=V,.. mode-specific settings (man kat lists them)",
         NULL},
        {"precise", CLI_FLAG, &o.precise,
         "       grad: recompute the softmax statistics instead of using the fp32 lse", NULL},
        {"threads", CLI_INT, &o.threads, "T      threads (default: KAT_NUM_THREADS or all)",
         NULL},
        {"seed", CLI_U64, &o.seed, "S      seed of the random feature maps (linear favor:M, "
         "rff:M) and of hash LSH (default 0)", NULL},
        {"json", CLI_FLAG, &o.json, "       machine-readable output", NULL},
    };
    cli_opt opts[sizeof base_opts / sizeof base_opts[0] + ATTN_MODE_FLAGS];
    size_t nopts = sizeof base_opts / sizeof base_opts[0];
    memcpy(opts, base_opts, sizeof base_opts);
    attn_mode_flag_opts(&o, opts, &nopts);
    char *pos[1];
    size_t npos = 0;
    int rc = cli_parse(usage_text, opts, nopts, argc, argv, pos, 1, &npos);
    if (rc)
        return rc < 0 ? CLI_OK : rc;
    int grad;
    if (npos == 1 && strcmp(pos[0], "run") == 0)
        grad = 0;
    else if (npos == 1 && strcmp(pos[0], "grad") == 0)
        grad = 1;
    else {
        fprintf(stderr, npos ? "kat attn: unknown action '%s' (run or grad)\n"
                             : "kat attn: say run or grad%s\n", npos ? pos[0] : "");
        cli_print_usage(stderr, usage_text, opts, nopts);
        return CLI_USAGE;
    }
    if (!fq || !fk || !fv || (!grad && !fo) || (grad && (!fdo || !fdq || !fdk || !fdv))) {
        fprintf(stderr, grad ? "kat attn grad: --q, --k, --v, --do, --dq, --dk and --dv are "
                               "required\n"
                             : "kat attn run: --q, --k, --v and --o are required\n");
        cli_print_usage(stderr, usage_text, opts, nopts);
        return CLI_USAGE;
    }
    if (!grad && (fdo || fdq || fdk || fdv || o.precise)) {
        fprintf(stderr, "kat attn run: --do, --dq, --dk, --dv and --precise are for kat attn "
                        "grad\n");
        cli_print_usage(stderr, usage_text, opts, nopts);
        return CLI_USAGE;
    }
    /* the sparse modes' mask and bucket files are inputs too */
    char mask_files[4][1024] = {"", "", "", ""};
    const char *mask_keys[4] = {"q_keep", "k_keep", "q_buckets", "k_buckets"};
    for (int i = 0; i < 4; i++)
        if (attn_param_str(&o, mask_keys[i], mask_files[i], sizeof mask_files[i]) < 0)
            return CLI_USAGE;
    const cli_path paths[] = {
        {"q", fq, 0},   {"k", fk, 0},   {"v", fv, 0},   {"do", fdo, 0},
        {"q-keep", mask_files[0][0] ? mask_files[0] : NULL, 0},
        {"k-keep", mask_files[1][0] ? mask_files[1] : NULL, 0},
        {"q-buckets", mask_files[2][0] ? mask_files[2] : NULL, 0},
        {"k-buckets", mask_files[3][0] ? mask_files[3] : NULL, 0},
        {"o", fo, 1},   {"lse", fl, 1}, {"dq", fdq, 1}, {"dk", fdk, 1}, {"dv", fdv, 1}};
    if ((rc = cli_check_paths(grad ? "attn grad" : "attn run", paths,
                              sizeof paths / sizeof paths[0])))
        return rc;
    o.lse = fl != NULL;
    if (o.threads < 0) {
        fprintf(stderr, "kat attn: --threads must be >= 0, got %d\n", o.threads);
        cli_print_usage(stderr, usage_text, opts, nopts);
        return CLI_USAGE;
    }
    if ((rc = cli_check_threads("attn", o.threads)))
        return rc;
    const attn_mode *mode = attn_mode_find("attn", o.mode);
    if (!mode)
        return CLI_USAGE;
    if (o.threads && (rc = cli_set_threads("attn", o.threads)))
        return rc;

    kat_outfile *outs[NOUT] = {NULL};
    const char *out_paths[NOUT] = {fo, fl, fdq, fdk, fdv};
    for (int i = 0; i < NOUT; i++) {
        FILE *f;
        kat_status st = out_paths[i] ? kat_outfile_open(out_paths[i], &outs[i], &f) : KAT_OK;
        if (st) {
            kat_outfile_close_all(outs, NOUT, 0);
            return cli_fail("attn", out_names[i], st);
        }
    }

    attn_tensors t;
    memset(&t, 0, sizeof t);
    loaded lq, lk, lv, lo, ll, ldo, ldq, ldk, ldv;
    loaded *all[] = {&lq, &lk, &lv, &lo, &ll, &ldo, &ldq, &ldk, &ldv};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        memset(all[i], 0, sizeof *all[i]);
    double ms = 0.0, ms_grad = 0.0;
    kat_status st;
    rc = CLI_OK;
    if ((rc = load(fq, "q", &lq, &t.q)) || (rc = load(fk, "k", &lk, &t.k)) ||
        (rc = load(fv, "v", &lv, &t.v)))
        goto done;
    if (lk.ndim != lq.ndim || lv.ndim != lq.ndim) {
        fprintf(stderr, "kat attn: q, k and v must have the same number of dimensions (%d, %d, "
                        "%d)\n", lq.ndim, lk.ndim, lv.ndim);
        rc = CLI_FAIL;
        goto done;
    }
    if ((st = kat_attn_desc_from_views(&t.q, &t.k, o.causal, o.scale, &t.desc))) {
        rc = cli_fail("attn", "shapes", st);
        goto done;
    }
    /* values may have their own head dimension: o has q's shape with v's last dimension */
    t.desc.Dv = t.v.D;
    kat_tensor o_shape = t.q;
    o_shape.D = t.v.D;
    if ((rc = make_output(&lq, &o_shape, 0, "o", &lo, &t.o)) ||
        (rc = make_output(&lq, &t.q, 1, "lse", &ll, &t.lse)))
        goto done;
    double t0 = cli_now();
    kat_clear_error();
    if ((st = run_call(mode, &o, &t, 0))) {
        rc = attn_mode_fail("attn", o.mode, st);
        goto done;
    }
    ms = (cli_now() - t0) * 1e3;
    if (grad) {
        if ((rc = load(fdo, "do", &ldo, &t.dout)) ||
            (rc = make_output(&lq, &t.q, 0, "dq", &ldq, &t.dq)) ||
            (rc = make_output(&lk, &t.k, 0, "dk", &ldk, &t.dk)) ||
            (rc = make_output(&lv, &t.v, 0, "dv", &ldv, &t.dv)))
            goto done;
        if (ldo.ndim != lq.ndim) {
            fprintf(stderr, "kat attn: do must have q's %d dimensions (got %d)\n", lq.ndim,
                    ldo.ndim);
            rc = CLI_FAIL;
            goto done;
        }
        t0 = cli_now();
        kat_clear_error();
        if ((st = run_call(mode, &o, &t, 1))) {
            rc = attn_mode_fail("attn", o.mode, st);
            goto done;
        }
        ms_grad = (cli_now() - t0) * 1e3;
        if ((rc = save(outs[OUT_DQ], "dq", &ldq)) || (rc = save(outs[OUT_DK], "dk", &ldk)) ||
            (rc = save(outs[OUT_DV], "dv", &ldv)))
            goto done;
    }
    if ((rc = save(outs[OUT_O], "o", &lo)) || (rc = save(outs[OUT_LSE], "lse", &ll)))
        goto done;
    if ((st = kat_outfile_close_all(outs, NOUT, 1))) {
        rc = cli_fail("attn", "outputs", st);
        goto done;
    }
    const kat_attn_desc *d = &t.desc;
    if (o.json) {
        cli_json j;
        cli_json_begin(&j, stdout);
        cli_json_str(&j, "command", grad ? "attn grad" : "attn run");
        cli_json_str(&j, "mode", o.mode);
        cli_json_str(&j, "isa", kat_arch_name());
        cli_json_int(&j, "threads", kat_num_threads());
        cli_json_int(&j, "b", (long long)d->B);
        cli_json_int(&j, "h", (long long)d->H);
        cli_json_int(&j, "h_kv", (long long)d->H_kv);
        cli_json_int(&j, "n", (long long)d->N);
        cli_json_int(&j, "m", (long long)d->M);
        cli_json_int(&j, "d", (long long)d->D);
        cli_json_bool(&j, "causal", d->causal);
        cli_json_num(&j, "scale", d->scale);
        cli_json_num(&j, "forward_ms", ms);
        if (grad)
            cli_json_num(&j, "backward_ms", ms_grad);
        cli_json_str(&j, "o", fo ? fo : "");
        cli_json_str(&j, "lse", fl ? fl : "");
        if (grad) {
            cli_json_str(&j, "dq", fdq);
            cli_json_str(&j, "dk", fdk);
            cli_json_str(&j, "dv", fdv);
        }
        cli_json_end(&j);
    } else {
        printf("kat attn %s: mode %s, B=%zu H=%zu H_kv=%zu N=%zu M=%zu D=%zu%s, scale %g\n",
               grad ? "grad" : "run", o.mode, d->B, d->H, d->H_kv, d->N, d->M, d->D,
               d->causal ? ", causal" : "", d->scale);
        printf("  forward %.3f ms%s%s%s%s\n", ms, fo ? " -> " : "", fo ? fo : "",
               fl ? ", lse -> " : "", fl ? fl : "");
        if (grad)
            printf("  backward %.3f ms -> %s, %s, %s\n", ms_grad, fdq, fdk, fdv);
    }
done:
    kat_outfile_close_all(outs, NOUT, 0);   /* after a failure: no file replaced */
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        kat_array_free(&all[i]->a);
    return rc;
}
