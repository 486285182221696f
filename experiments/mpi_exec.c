/* `kat` without MPI hands the distributed runs to `kat-mpi`, the same command linked with
 * MPI, PETSc and SLEPc, which are too heavy to load on every start of kat (about 80 ms of
 * relocations, ten times kat's own start). */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "mpi_exec.h"

int mpi_cli_launched(void)
{
    /* Open MPI, MPICH/Hydra and Slurm set one of these in every process they start. */
    const char *vars[] = {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_SIZE", "SLURM_NTASKS"};
    for (size_t i = 0; i < sizeof vars / sizeof *vars; i++) {
        const char *v = getenv(vars[i]);
        if (v && atoi(v) > 1)
            return 1;
    }
    return 0;
}

int mpi_exec_kat_mpi(const char *cmd)
{
    char self[PATH_MAX], path[PATH_MAX + 16];
    ssize_t len = readlink("/proc/self/exe", self, sizeof self - 1);
    FILE *f = fopen("/proc/self/cmdline", "rb");
    if (len <= 0 || !f) {
        if (f)
            fclose(f);
        fprintf(stderr, "kat %s: cannot find kat-mpi (no /proc/self)\n", cmd);
        return 1;
    }
    self[len] = '\0';
    char *slash = strrchr(self, '/');
    snprintf(path, sizeof path, "%.*s/kat-mpi", slash ? (int)(slash - self) : 0, self);
    /* The whole command line, as this process was started. */
    static char buf[1 << 16];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    char *args[1024];
    size_t k = 0;
    for (size_t i = 0; i < n && k < 1023; i += strlen(buf + i) + 1)
        args[k++] = buf + i;
    args[k] = NULL;
    args[0] = path;
    execv(path, args);
    fprintf(stderr, "kat %s: cannot run %s, the kat command built with MPI and SLEPc (meson "
            "-Dmpi=enabled; Debian: libopenmpi-dev slepc-dev)\n", cmd, path);
    return 2;
}
