#pragma once

#include <stdint.h>

/* Creates dst as a copy-on-write clone of src (FICLONE) where the file system allows it, else as
 * a sparse copy that skips holes. dst is written under a temporary name, fsynced and renamed in
 * place; on failure nothing is left at dst. Returns 1 when src was cloned and 0 when it was
 * copied. */
int disk_clone(const char *src, const char *dst);
