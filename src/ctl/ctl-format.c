#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ctl-format.h"
#include "macro.h"

char *format_bytes(char *buf, size_t size, uint64_t bytes)
{
        static const char *const units[] = { "KiB", "MiB", "GiB", "TiB", "PiB", "EiB" };
        /* Tenths of the value in the current unit, rounded to nearest. */
        uint64_t tenths;
        size_t unit = 0;

        if (bytes < 1024) {
                (void)snprintf(buf, size, "%" PRIu64 " B", bytes);
                return buf;
        }

        /* Integer arithmetic keeps 64-bit values exact. Pick the largest unit the value
         * reaches, then round the remainder to one decimal. */
        while (unit + 1 < ELEMENTSOF(units) && bytes >= (UINT64_C(1024) << (10 * (unit + 1))))
                unit++;
        {
                uint64_t divisor = UINT64_C(1024) << (10 * unit);
                uint64_t whole = bytes / divisor, rest = bytes % divisor;

                tenths = whole * 10 + (rest * 10 + divisor / 2) / divisor;
                /* Avoid printing "1024.0 KiB" when rounding reaches the next unit. */
                if (tenths >= 10240 && unit + 1 < ELEMENTSOF(units)) {
                        unit++;
                        tenths = 10;
                }
        }

        (void)snprintf(buf, size, "%" PRIu64 ".%" PRIu64 " %s", tenths / 10, tenths % 10,
                       units[unit]);
        return buf;
}

char *format_timestamp(char *buf, size_t size, uint64_t usec)
{
        time_t sec = (time_t)(usec / 1000000);
        struct tm tm;

        if (usec == 0 || !gmtime_r(&sec, &tm) ||
            strftime(buf, size, "%Y-%m-%d %H:%M:%S UTC", &tm) == 0)
                (void)snprintf(buf, size, "n/a");
        return buf;
}

char *format_port_forward(char *buf, size_t size, const char *proto, uint16_t host_port,
                          uint16_t guest_port)
{
        (void)snprintf(buf, size, "%" PRIu16 ":%" PRIu16 "/%s", host_port, guest_port, proto);
        return buf;
}

char *format_progress_plain(char *buf, size_t size, const char *step, uint64_t bytes_done,
                            uint64_t bytes_total)
{
        char done[FORMAT_BYTES_MAX], total[FORMAT_BYTES_MAX];

        /* Counters the daemon left at their total belong to an earlier step. */
        if (bytes_total == 0 || bytes_done >= bytes_total)
                (void)snprintf(buf, size, "%s", step);
        else
                (void)snprintf(buf, size, "%s %s / %s", step,
                               format_bytes(done, sizeof(done), bytes_done),
                               format_bytes(total, sizeof(total), bytes_total));
        return buf;
}

char *format_progress_bar(char *buf, size_t size, size_t width, const char *step, double progress,
                          uint64_t bytes_done, uint64_t bytes_total)
{
        char done[FORMAT_BYTES_MAX], total[FORMAT_BYTES_MAX], tail[64], bar[256];
        size_t len_step, len_tail, n_bar, n_filled;
        unsigned percent;

        if (!(progress >= 0.0))
                progress = 0.0;
        if (progress > 1.0)
                progress = 1.0;
        percent = (unsigned)(progress * 100.0);

        if (bytes_total > 0 && bytes_done < bytes_total)
                (void)snprintf(tail, sizeof(tail), " %3u%% %s / %s", percent,
                               format_bytes(done, sizeof(done), bytes_done),
                               format_bytes(total, sizeof(total), bytes_total));
        else
                (void)snprintf(tail, sizeof(tail), " %3u%%", percent);

        /* Leave the last column free, because writing into it makes some terminals wrap. */
        width = width > 0 ? width - 1 : 0;
        len_step = strlen(step);
        len_tail = strlen(tail);

        /* "step [" + bar + "]" + tail, with at least 10 cells of bar, or no bar at all. */
        if (width >= len_step + 2 + 10 + 1 + len_tail) {
                n_bar = width - len_step - 2 - 1 - len_tail;
                if (n_bar > 50)
                        n_bar = 50;
                n_filled = (size_t)(progress * (double)n_bar);
                memset(bar, '#', n_filled);
                memset(bar + n_filled, ' ', n_bar - n_filled);
                bar[n_bar] = '\0';
                (void)snprintf(buf, size, "%s [%s]%s", step, bar, tail);
        } else if (width >= len_step + len_tail)
                (void)snprintf(buf, size, "%s%s", step, tail);
        else
                (void)snprintf(buf, size, "%.*s", (int)(width < len_step ? width : len_step), step);
        return buf;
}

int table_new(Table **ret, const char *const *header, size_t n_columns)
{
        Table *t;
        int r;

        assert(n_columns > 0);

        t = calloc(1, sizeof(Table));
        if (!t)
                return -ENOMEM;
        t->n_columns = n_columns;

        for (size_t i = 0; i < n_columns; i++) {
                r = table_add(t, header[i]);
                if (r < 0) {
                        table_free(t);
                        return r;
                }
        }

        *ret = t;
        return 0;
}

Table *table_free(Table *t)
{
        if (!t)
                return NULL;
        for (size_t i = 0; i < t->n_cells; i++)
                free(t->cells[i]);
        free(t->cells);
        free(t);
        return NULL;
}

int table_add(Table *t, const char *cell)
{
        char **cells, *copy;

        copy = strdup(cell ? cell : "-");
        if (!copy)
                return -ENOMEM;

        cells = reallocarray(t->cells, t->n_cells + 1, sizeof(char *));
        if (!cells) {
                free(copy);
                return -ENOMEM;
        }
        t->cells = cells;
        t->cells[t->n_cells++] = copy;
        return 0;
}

size_t table_rows(const Table *t)
{
        return (t->n_cells + t->n_columns - 1) / t->n_columns;
}

int table_print(const Table *t, FILE *f)
{
        _cleanup_free_ size_t *widths = NULL;

        widths = calloc(t->n_columns, sizeof(size_t));
        if (!widths)
                return -ENOMEM;

        for (size_t i = 0; i < t->n_cells; i++) {
                size_t len = strlen(t->cells[i]);

                if (len > widths[i % t->n_columns])
                        widths[i % t->n_columns] = len;
        }

        for (size_t i = 0; i < t->n_cells; i++) {
                size_t column = i % t->n_columns;
                bool last = column + 1 == t->n_columns || i + 1 == t->n_cells;

                if (last)
                        fprintf(f, "%s\n", t->cells[i]);
                else
                        fprintf(f, "%-*s  ", (int)widths[column], t->cells[i]);
        }

        return fflush(f) == 0 ? 0 : negative_errno();
}
