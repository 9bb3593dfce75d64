/* path.c -- paths relative to the running program (path.h). */
#include "path.h"

#include <errno.h>
#include <string.h>
#include <unistd.h>

int path_beside_self(const char *rel, char *buf, size_t size)
{
    if (size < 2) {
        errno = ENAMETOOLONG;
        return -1;
    }
    ssize_t n = readlink("/proc/self/exe", buf, size - 1);
    if (n < 0)
        return -1;
    if ((size_t)n >= size - 1) { /* maybe cut short */
        errno = ENAMETOOLONG;
        return -1;
    }
    buf[n] = '\0';
    char *slash = strrchr(buf, '/');
    size_t len = strlen(rel);
    if (slash == NULL) {
        errno = ENOENT;
        return -1;
    }
    if ((size_t)(slash - buf) + 1 + len + 1 > size) {
        errno = ENAMETOOLONG;
        return -1;
    }
    memcpy(slash + 1, rel, len + 1);
    return 0;
}
