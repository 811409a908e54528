#pragma once

#include <stdarg.h>
#include <syslog.h>

/* Logging for banger's programs. Messages go to the journal when stderr is connected to it
 * (JOURNAL_STREAM matches) and to stderr otherwise. Extra journal fields such as "VM=dev1"
 * can be attached with the log_*_fields() forms. Library code in src/shared logs at debug
 * level only; programs decide what to report. */

void log_set_max_level(int level);
int log_get_max_level(void);

/* Formats a message with printf syntax; %m expands to strerror(-error) when error is non-zero.
 * Returns error when it is negative, else -EIO for a non-zero positive error and 0 for none,
 * so that "return log_error_errno(r, ...)" passes the failure on. */
int log_internal(int level, int error, const char *field, const char *format, ...)
        __attribute__((format(printf, 4, 5)));

#define log_full_errno(level, error, ...) log_internal((level), (error), NULL, __VA_ARGS__)
#define log_full(level, ...)              ((void)log_internal((level), 0, NULL, __VA_ARGS__))

#define log_debug(...)   log_full(LOG_DEBUG, __VA_ARGS__)
#define log_info(...)    log_full(LOG_INFO, __VA_ARGS__)
#define log_notice(...)  log_full(LOG_NOTICE, __VA_ARGS__)
#define log_warning(...) log_full(LOG_WARNING, __VA_ARGS__)
#define log_error(...)   log_full(LOG_ERR, __VA_ARGS__)

#define log_debug_errno(error, ...)   log_full_errno(LOG_DEBUG, (error), __VA_ARGS__)
#define log_info_errno(error, ...)    log_full_errno(LOG_INFO, (error), __VA_ARGS__)
#define log_warning_errno(error, ...) log_full_errno(LOG_WARNING, (error), __VA_ARGS__)
#define log_error_errno(error, ...)   log_full_errno(LOG_ERR, (error), __VA_ARGS__)

/* The same with one journal field ("VM=dev1", "IMAGE=...", "JOB=3") attached.
 * TODO: field goes to the journal as written, but the daemon's callers pass "VM=%s" and the like
 * with the value among the message's arguments, so the journal gets the text "VM=%s". */
#define log_field(level, field, ...) ((void)log_internal((level), 0, (field), __VA_ARGS__))
#define log_field_errno(level, error, field, ...) \
        log_internal((level), (error), (field), __VA_ARGS__)
