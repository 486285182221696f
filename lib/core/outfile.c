/* Files written whole or not at all: the data goes to a temporary file in the target's
 * directory, which is flushed to the disk and renamed over the target only once it is
 * complete and closed, so a failed or interrupted write (a full disk, a file-size limit, a
 * crash, a power cut) leaves the old file as it was. The rename is atomic within one file
 * system, hence the same directory. */
#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "core/internal.h"
#include "core/io_internal.h"
#include "kat/io.h"

struct kat_outfile {
    FILE *f;
    char *name;         /* the path as given, for messages */
    char *path, *tmp;   /* the file replaced (a link followed); tmp NULL: written in place */
    int slot;           /* in `live`, or -1 */
};

/* The temporary files open now, for kat_outfile_remove_temporaries, which a signal handler
 * calls: plain atomic slots, no lock (a handler cannot take one). A file opened while every
 * slot is taken is written as well, only not removed by a signal. */
#define LIVE_SLOTS 64
static char *_Atomic live[LIVE_SLOTS];

static void live_add(kat_outfile *o)
{
    o->slot = -1;
    for (int i = 0; i < LIVE_SLOTS; i++) {
        char *expected = NULL;
        if (atomic_compare_exchange_strong(&live[i], &expected, o->tmp)) {
            o->slot = i;
            return;
        }
    }
}

static void live_drop(kat_outfile *o)
{
    if (o->slot >= 0)
        atomic_store(&live[o->slot], NULL);
    o->slot = -1;
}

void kat_outfile_remove_temporaries(void)
{
    for (int i = 0; i < LIVE_SLOTS; i++) {
        char *t = atomic_load(&live[i]);
        if (t)
            unlink(t);
    }
}

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

/* kat_outfile_target's work: KAT_OK with *out (kat_free), KAT_ERANGE for a path too long,
 * KAT_ENOMEM. */
static kat_status resolve(const char *path, char **out)
{
    *out = NULL;
    char cur[4096], link[4096];
    if ((size_t)snprintf(cur, sizeof cur, "%s", path) >= sizeof cur)
        return KAT_ERANGE;
    struct stat st;
    /* a dangling link (to a file still to be made) is followed by hand; 40 as the kernel */
    for (int hops = 0; hops < 40 && lstat(cur, &st) == 0 && S_ISLNK(st.st_mode); hops++) {
        ssize_t n = readlink(cur, link, sizeof link - 1);
        if (n < 0)
            break;
        link[n] = '\0';
        const char *slash = strrchr(cur, '/');
        int dirlen = link[0] == '/' || !slash ? 0 : (int)(slash - cur) + 1;
        char next[4096];
        if ((size_t)snprintf(next, sizeof next, "%.*s%s", dirlen, cur, link) >= sizeof next)
            return KAT_ERANGE;
        memcpy(cur, next, sizeof cur);
    }
    char *real = stat(cur, &st) == 0 ? realpath(cur, NULL) : NULL;
    const char *t = real ? real : cur;
    size_t len = strlen(t);
    *out = kat_malloc(len + 1);
    if (*out)
        memcpy(*out, t, len + 1);
    free(real);
    return *out ? KAT_OK : KAT_ENOMEM;
}

char *kat_outfile_target(const char *path)
{
    char *t = NULL;
    if (path)
        resolve(path, &t);
    return t;
}

static kat_status open_failed(const char *path, int err)
{
    return kat__fail(KAT_EIO, "cannot open '%s' for writing: %s", path, strerror(err));
}

static void outfile_free(kat_outfile *o)
{
    kat_free(o->name), kat_free(o->path), kat_free(o->tmp), kat_free(o);
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
    /* a device, a pipe...: cannot be replaced by a rename, and holds nothing to keep; a link
     * is followed: the file it names is replaced, the link stays */
    int in_place = exists && !S_ISREG(st.st_mode);
    /* a read-only file is refused as fopen would refuse it, though the rename could pass */
    if (exists && !in_place && access(path, W_OK) != 0)
        return open_failed(path, errno);
    char *p = NULL;
    kat_status rs = in_place ? KAT_OK : resolve(path, &p);
    if (rs == KAT_ERANGE)
        return kat__fail(KAT_EIO, "cannot open '%s' for writing: the path is too long", path);
    if (rs)
        return rs;
    size_t len = p ? strlen(p) : 0, nlen = strlen(path);
    kat_outfile *o = kat_calloc(1, sizeof *o);
    char *t = in_place ? NULL : kat_malloc(len + 16);
    char *name = kat_malloc(nlen + 1);
    if (!o || !name || (!in_place && !t)) {
        kat_free(o), kat_free(p), kat_free(t), kat_free(name);
        return KAT_ENOMEM;
    }
    memcpy(name, path, nlen + 1);
    o->name = name, o->path = p, o->slot = -1;
    if (in_place) {
        if (!(o->f = fopen(path, "wb"))) {
            kat_status s = open_failed(path, errno);
            outfile_free(o);
            return s;
        }
        *out = o, *f = o->f;
        return KAT_OK;
    }
    /* "dir/.name.XXXXXX": hidden, and next to the target (same file system) */
    const char *slash = strrchr(p, '/');
    size_t dirlen = slash ? (size_t)(slash - p) + 1 : 0;
    snprintf(t, len + 16, "%.*s.%s.XXXXXX", (int)dirlen, p, p + dirlen);
    mode_t mode = new_file_mode(p);
    o->tmp = t;
    live_add(o);   /* before the file exists: a signal in between finds it too */
    int fd = mkstemp(t);
    if (fd < 0) {
        kat_status s = open_failed(name, errno);
        live_drop(o);
        outfile_free(o);
        return s;
    }
    (void)fchmod(fd, mode);
    if (!(o->f = fdopen(fd, "wb"))) {
        kat_status s = open_failed(name, errno);
        close(fd), unlink(t), live_drop(o);
        outfile_free(o);
        return s;
    }
    *out = o, *f = o->f;
    return KAT_OK;
}

const char *kat__outfile_path(const kat_outfile *o) { return o->name; }
FILE *kat__outfile_stream(const kat_outfile *o) { return o->f; }

/* Flush, sync (when it is to be kept) and close o's stream; 0, or the errno of the first
 * failure. A stream that already failed (ferror) is flushed again for the reason (the full
 * disk, the size limit). */
static int finish(kat_outfile *o, int keep)
{
    int err = 0;
    errno = 0;
    if (fflush(o->f) != 0 || ferror(o->f))
        err = errno ? errno : EIO;
    if (!err && keep && o->tmp && fsync(fileno(o->f)) != 0)
        err = errno;
    if (fclose(o->f) != 0 && !err)
        err = errno ? errno : EIO;
    o->f = NULL;
    return err;
}

kat_status kat_outfile_close_all(kat_outfile **o, size_t n, int commit)
{
    if (!o)
        return n ? kat__fail(KAT_EINVAL, "outfile_close_all: o is NULL") : KAT_OK;
    kat_status st = KAT_OK;
    for (size_t i = 0; i < n; i++) {
        int err = o[i] ? finish(o[i], commit) : 0;
        if (err && commit && st == KAT_OK)
            st = kat__fail(KAT_EIO, "cannot write '%s': %s", o[i]->name, strerror(err));
    }
    /* every file complete before the first rename: a failed write replaces none of them (a
     * rename that fails after others passed leaves those replaced) */
    for (size_t i = 0; i < n; i++) {
        if (!o[i])
            continue;
        if (o[i]->tmp && commit && st == KAT_OK && rename(o[i]->tmp, o[i]->path) != 0)
            st = kat__fail(KAT_EIO, "cannot write '%s': %s", o[i]->name, strerror(errno));
        if (o[i]->tmp && (!commit || st != KAT_OK))
            unlink(o[i]->tmp);
        live_drop(o[i]);
        outfile_free(o[i]);
        o[i] = NULL;
    }
    return st;
}

kat_status kat_outfile_close(kat_outfile *o, int commit)
{
    return kat_outfile_close_all(&o, 1, commit);
}
