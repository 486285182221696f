/* Outputs that would overwrite an input or another output, found before any work. Files are
 * compared by identity (device and inode), not by name: "a.npy", "./a.npy" and a link to it
 * are one file. An output that does not exist yet is its directory's identity plus its name
 * (a dangling link followed to the file it would make). */
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include "cli.h"
#include "kat/kat.h"

typedef struct {
    int known;   /* 0: an input that does not exist (its read fails later), or no path */
    dev_t dev;
    ino_t ino;
    char name[4096];   /* "" for an existing file; the last component for a new one */
} file_id;

static file_id identify(const cli_path *p)
{
    file_id id = {0, 0, 0, ""};
    struct stat st;
    if (!p->path)
        return id;
    if (stat(p->path, &st) == 0) {
        id.known = 1, id.dev = st.st_dev, id.ino = st.st_ino;
        return id;
    }
    if (!p->output)
        return id;
    /* the file the output would be: a dangling link's target, which writing it makes */
    char *target = kat_outfile_target(p->path);
    const char *path = target ? target : p->path;
    if (stat(path, &st) == 0) {
        id.known = 1, id.dev = st.st_dev, id.ino = st.st_ino;
        kat_free(target);
        return id;
    }
    const char *slash = strrchr(path, '/');
    char dir[4096];
    if (!slash)
        snprintf(dir, sizeof dir, ".");
    else
        snprintf(dir, sizeof dir, "%.*s", (int)(slash == path ? 1 : slash - path), path);
    snprintf(id.name, sizeof id.name, "%s", slash ? slash + 1 : path);
    if (stat(dir, &st) == 0) {
        id.known = 1, id.dev = st.st_dev, id.ino = st.st_ino;
    } else {   /* a missing directory: the write fails later; names still must differ */
        id.known = 1;
        snprintf(id.name, sizeof id.name, "%s", path);
    }
    kat_free(target);
    return id;
}

static int same(const file_id *a, const file_id *b)
{
    return a->known && b->known && a->dev == b->dev && a->ino == b->ino &&
           strcmp(a->name, b->name) == 0;
}

int cli_check_paths(const char *cmd, const cli_path *paths, size_t n)
{
    file_id ids[CLI_MAX_PATHS];
    if (n > CLI_MAX_PATHS)
        n = CLI_MAX_PATHS;
    for (size_t i = 0; i < n; i++)
        ids[i] = identify(&paths[i]);
    /* pairs with an output in them; the output is named first, or the earlier of two */
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < i; j++)
            if ((paths[i].output || paths[j].output) && same(&ids[i], &ids[j])) {
                const cli_path *a = paths[j].output ? &paths[j] : &paths[i];
                const cli_path *b = a == &paths[j] ? &paths[i] : &paths[j];
                fprintf(stderr, "kat %s: --%s and --%s name the same file: %s\n", cmd, a->opt,
                        b->opt, a->path);
                return CLI_USAGE;
            }
    return CLI_OK;
}
