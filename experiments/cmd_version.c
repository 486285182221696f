/* `kat version` / `kat --version`: what this build is and what it runs on. */
#include "cli.h"

int kat_cmd_version(int argc, char **argv)
{
    int json = 0;
    const cli_opt opts[] = {{"json", CLI_FLAG, &json, "machine-readable output", NULL}};
    int rc = cli_parse("usage: kat version [--json]", opts, 1, argc, argv, NULL, 0, NULL);
    if (rc)
        return rc < 0 ? CLI_OK : rc;
    if (json) {
        cli_json j;
        cli_json_begin(&j, stdout);
        cli_json_str(&j, "version", kat_version());
        cli_json_str(&j, "isa", kat_arch_name());
        cli_json_str(&j, "blas", kat_blas_info());
        cli_json_int(&j, "threads", kat_num_threads());
        cli_json_end(&j);
    } else {
        printf("kat %s\nisa: %s\nblas: %s\nthreads: %d\n", kat_version(), kat_arch_name(),
               kat_blas_info(), kat_num_threads());
    }
    return CLI_OK;
}
