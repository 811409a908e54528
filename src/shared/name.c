#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "macro.h"
#include "name.h"

static int fail(char **ret_message, const char *format, const char *name)
{
        if (ret_message && asprintf(ret_message, format, name) < 0)
                return -ENOMEM;
        return -EINVAL;
}

static bool is_vm_name_char(char c)
{
        return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-';
}

int vm_name_check(const char *name, char **ret_message)
{
        size_t n;

        if (isempty(name))
                return fail(ret_message, "VM name '%s' is empty: give a name such as 'dev1'",
                            strempty(name));

        n = strlen(name);
        if (n > VM_NAME_MAX)
                return fail(ret_message,
                            "VM name '%s' is longer than 63 characters: choose a shorter name",
                            name);

        for (const char *p = name; *p; p++) {
                if (*p >= 'A' && *p <= 'Z')
                        return fail(ret_message,
                                    "VM name '%s' contains upper case letters: VM names are "
                                    "host names, use lower case",
                                    name);
                if (!is_vm_name_char(*p))
                        return fail(ret_message,
                                    "VM name '%s' contains a character other than a-z, 0-9 "
                                    "and '-': VM names are host names",
                                    name);
        }

        if (name[0] == '-' || name[n - 1] == '-')
                return fail(ret_message,
                            "VM name '%s' starts or ends with '-': VM names are host names, "
                            "which may not",
                            name);
        return 0;
}

static bool is_kernel_name_char(char c)
{
        return isascii(c) && (isalnum(c) || strchr("._+-", c));
}

int kernel_name_check(const char *name, char **ret_message)
{
        if (isempty(name))
                return fail(ret_message, "Kernel name '%s' is empty: give a name such as '6.1'",
                            strempty(name));
        if (strlen(name) > KERNEL_NAME_MAX)
                return fail(ret_message,
                            "Kernel name '%s' is longer than 128 characters: choose a shorter "
                            "name",
                            name);
        /* A leading '-' would make the name an option on the bangerctl command line, and a
         * leading '.' would make its store directory hidden (or be "." or ".."). */
        if (name[0] == '-' || name[0] == '.')
                return fail(ret_message,
                            "Kernel name '%s' starts with '-' or '.': kernel names must start "
                            "with a letter, a digit, '_' or '+'",
                            name);

        for (const char *p = name; *p; p++)
                if (!is_kernel_name_char(*p))
                        return fail(ret_message,
                                    "Kernel name '%s' contains a character other than A-Z, a-z, "
                                    "0-9, '.', '_', '+' and '-'",
                                    name);
        return 0;
}

static bool is_plain_char(char c, bool first)
{
        if (!isascii(c))
                return false;
        if (c == '.')
                return !first;
        return isalnum(c) || strchr("_+:@-", c);
}

int name_escape(const char *name, char **ret)
{
        char *buf, *q;

        buf = malloc(strlen(name) * 3 + 1);
        if (!buf)
                return -ENOMEM;

        q = buf;
        for (const char *p = name; *p; p++) {
                if (is_plain_char(*p, p == name))
                        *q++ = *p;
                else
                        q += sprintf(q, "%%%02X", (unsigned char)*p);
        }
        *q = '\0';

        *ret = buf;
        return 0;
}

static int hex_value(char c)
{
        if (c >= '0' && c <= '9')
                return c - '0';
        if (c >= 'A' && c <= 'F')
                return c - 'A' + 10;
        if (c >= 'a' && c <= 'f')
                return c - 'a' + 10;
        return -EINVAL;
}

int name_unescape(const char *escaped, char **ret)
{
        _cleanup_free_ char *buf = malloc(strlen(escaped) + 1);
        char *q;

        if (!buf)
                return -ENOMEM;

        q = buf;
        for (const char *p = escaped; *p; p++) {
                int hi, lo;

                if (*p != '%') {
                        *q++ = *p;
                        continue;
                }

                hi = hex_value(p[1]);
                lo = hi < 0 ? -EINVAL : hex_value(p[2]);
                if (lo < 0 || (hi == 0 && lo == 0))
                        return -EINVAL;
                *q++ = (char)(hi << 4 | lo);
                p += 2;
        }
        *q = '\0';

        *ret = TAKE_PTR(buf);
        return 0;
}
