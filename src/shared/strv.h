#pragma once

#include <stdbool.h>
#include <stddef.h>

/* NULL-terminated string arrays, owned by the caller. */

char **strv_free(char **l);
static inline void strv_freep(char ***l)
{
        strv_free(*l);
}
#define _cleanup_strv_free_ __attribute__((cleanup(strv_freep)))

size_t strv_length(char *const *l);
bool strv_contains(char *const *l, const char *s);

/* Appends a copy of s to *l. */
int strv_extend(char ***l, const char *s);

/* Appends value to *l, taking ownership of it even on failure. */
int strv_consume(char ***l, char *value);

char **strv_copy(char *const *l);
