/* Files written whole or not at all: the data goes to a temporary file in the target's
 * directory, which is renamed over the target only once it is complete and closed, so a
 * failed or interrupted write (a full disk, a file-size limit, a crash) leaves the old file
 * as it was. The rename is atomic within one file system, hence the same directory. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "core/internal.h"
#include "kat/io.h"

struct kat_outfile {
    FILE *f;
    char *path, *tmp;
};

/* The permissions a plain fopen(path, "w") would give a new file: 0666 less the umask, read
 * from /proc (umask() itself would change it, process-wide, for a moment). An existing target
 * keeps its own. */
static mode_t new_file_mode(const char *path)
{
    struct stat st;
    if (stat(path, &st) == 0)
        return st.st_mode & 07777;
    mode_t mask = 022;
    FILE *s = fopen("/proc/self/status", "r");
    if (s) {
        char line[128];
        unsigned m;
        while (fgets(line, sizeof line, s))
            if (sscanf(line, "Umask: %o", &m) == 1) {
                mask = (mode_t)m;
                break;
            }
        fclose(s);
    }
    return 0666 & ~mask;
}

kat_status kat_outfile_open(const char *path, kat_outfile **out, FILE **f)
{
    if (!out || !f)
        return kat__fail(KAT_EINVAL, "outfile_open: out or f is NULL");
    *out = NULL, *f = NULL;
    if (!path || !*path)
        return kat__fail(KAT_EINVAL, "outfile_open: path is NULL or empty");
    struct stat st;
    int exists = stat(path, &st) == 0;
    if (exists && !S_ISREG(st.st_mode)) {
        /* a device, a pipe...: cannot be replaced by a rename, and holds nothing to keep */
        size_t len = strlen(path);
        kat_outfile *o = kat_calloc(1, sizeof *o);
        char *p = kat_malloc(len + 1);
        if (!o || !p) {
            kat_free(o), kat_free(p);
            return KAT_ENOMEM;
        }
        memcpy(p, path, len + 1);
        if (!(o->f = fopen(path, "wb"))) {
            kat_free(o), kat_free(p);
            return kat__fail(KAT_EIO, "cannot open '%s' for writing: %s", path, strerror(errno));
        }
        o->path = p;
        *out = o, *f = o->f;
        return KAT_OK;
    }
    /* a link is followed: the file it names is replaced, the link stays */
    char *real = exists ? realpath(path, NULL) : NULL;
    const char *target = real ? real : path;
    const char *slash = strrchr(target, '/');
    size_t dirlen = slash ? (size_t)(slash - target) + 1 : 0, len = strlen(target);
    kat_outfile *o = kat_calloc(1, sizeof *o);
    char *p = kat_malloc(len + 1), *t = kat_malloc(len + 16);
    if (!o || !p || !t) {
        free(real);
        kat_free(o), kat_free(p), kat_free(t);
        return KAT_ENOMEM;
    }
    memcpy(p, target, len + 1);
    free(real);
    path = p;
    /* "dir/.name.XXXXXX": hidden, and next to the target (same file system) */
    snprintf(t, len + 16, "%.*s.%s.XXXXXX", (int)dirlen, path, path + dirlen);
    mode_t mode = new_file_mode(path);
    int fd = mkstemp(t);
    if (fd < 0) {
        kat_status st = kat__fail(KAT_EIO, "cannot open '%s' for writing: %s", path,
                                 strerror(errno));
        kat_free(o), kat_free(p), kat_free(t);
        return st;
    }
    (void)fchmod(fd, mode);
    o->f = fdopen(fd, "wb");
    if (!o->f) {
        kat_status st = kat__fail(KAT_EIO, "cannot open '%s' for writing: %s", path,
                                 strerror(errno));
        close(fd), unlink(t);
        kat_free(o), kat_free(p), kat_free(t);
        return st;
    }
    o->path = p, o->tmp = t;
    *out = o, *f = o->f;
    return KAT_OK;
}

kat_status kat_outfile_close(kat_outfile *o, int commit)
{
    if (!o)
        return KAT_OK;
    int err = 0;
    int bad = ferror(o->f) != 0;
    if (bad)
        err = errno ? errno : EIO;
    if (fclose(o->f) != 0 && !bad)
        bad = 1, err = errno;
    kat_status st = KAT_OK;
    if (!o->tmp) {   /* written in place */
        if (commit && bad)
            st = kat__fail(KAT_EIO, "cannot write '%s': %s", o->path, strerror(err));
        kat_free(o->path), kat_free(o);
        return st;
    }
    if (commit && !bad && rename(o->tmp, o->path) != 0)
        bad = 1, err = errno;
    if (!commit || bad)
        unlink(o->tmp);
    if (commit && bad)
        st = kat__fail(KAT_EIO, "cannot write '%s': %s", o->path, strerror(err));
    kat_free(o->path), kat_free(o->tmp), kat_free(o);
    return st;
}
