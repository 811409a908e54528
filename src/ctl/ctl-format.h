#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* Text formatting for bangerctl's output, free of I/O so that unit tests can check it. */

/* Buffer sizes that always suffice for the functions below. */
#define FORMAT_BYTES_MAX     16
#define FORMAT_TIMESTAMP_MAX 40
#define FORMAT_FORWARD_MAX   24

/* Formats a byte count with binary units: "512 B", "1.0 KiB", "12.3 MiB", "40.0 GiB". Returns
 * buf. */
char *format_bytes(char *buf, size_t size, uint64_t bytes);

/* Formats usec since the epoch in UTC as "2026-12-04 16:05:00 UTC", or "n/a" for 0. Returns
 * buf. */
char *format_timestamp(char *buf, size_t size, uint64_t usec);

/* Formats a port forward in the form that 'bangerctl vm port add' takes: "8080:80/tcp".
 * Returns buf. */
char *format_port_forward(char *buf, size_t size, const char *proto, uint16_t host_port,
                          uint16_t guest_port);

/* Formats the plain progress line written when a job's step changes: the step alone, or
 * "download 12.3 MiB / 40.0 MiB" while the job reports a transfer that has not finished yet.
 * Returns buf. */
char *format_progress_plain(char *buf, size_t size, const char *step, uint64_t bytes_done,
                            uint64_t bytes_total);

/* Formats a one-line progress bar of at most width - 1 columns, so that it never wraps:
 * "download [#####     ]  50% 20.0 MiB / 40.0 MiB", with the byte counts under the same rule
 * as format_progress_plain(). progress is clamped to 0..1. The bar shrinks, then goes, when
 * width is small. Returns buf. */
char *format_progress_bar(char *buf, size_t size, size_t width, const char *step, double progress,
                          uint64_t bytes_done, uint64_t bytes_total);

/* A table of text cells printed with aligned columns. */
typedef struct Table {
        size_t n_columns;
        size_t n_cells;
        char **cells; /* row-major, the first row is the header */
} Table;

int table_new(Table **ret, const char *const *header, size_t n_columns);
Table *table_free(Table *t);
static inline void table_freep(Table **t)
{
        table_free(*t);
}
#define _cleanup_table_free_ __attribute__((cleanup(table_freep)))

/* Appends one cell. Rows fill from left to right, and NULL is shown as "-". */
int table_add(Table *t, const char *cell);

size_t table_rows(const Table *t);

/* Writes the table with columns separated by two spaces and no trailing blanks. */
int table_print(const Table *t, FILE *f);
