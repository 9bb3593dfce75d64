/*
 * path.h -- paths relative to the running program (vigild finds build/vigil-zygote and
 * docs/openapi.json from where it is, not from the working directory). Relies on: libc and
 * /proc/self/exe.
 */
#ifndef VIGIL_PATH_H
#define VIGIL_PATH_H

#include <stddef.h>

/* Writes the directory of the running program, '/', then rel into buf (size bytes). Returns 0,
 * or -1 with errno set (ENAMETOOLONG when it does not fit). */
int path_beside_self(const char *rel, char *buf, size_t size);

#endif
