#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <systemd/sd-journal.h>

#include "log.h"

static int max_level = LOG_INFO;
static int use_journal = -1;

void log_set_max_level(int level)
{
        max_level = level;
}

int log_get_max_level(void)
{
        return max_level;
}

/* stderr is the journal when JOURNAL_STREAM names the device and inode of fd 2. */
static int stderr_is_journal(void)
{
        const char *e = getenv("JOURNAL_STREAM");
        unsigned long long dev, ino;
        struct stat st;

        if (!e || sscanf(e, "%llu:%llu", &dev, &ino) != 2)
                return 0;
        if (fstat(STDERR_FILENO, &st) < 0)
                return 0;
        return st.st_dev == dev && st.st_ino == ino;
}

static void log_init_once(void)
{
        const char *e;

        if (use_journal >= 0)
                return;
        use_journal = stderr_is_journal();

        e = getenv("BANGER_LOG_LEVEL");
        if (e && strcmp(e, "debug") == 0)
                max_level = LOG_DEBUG;
}

int log_internal(int level, int error, const char *field, const char *format, ...)
{
        char buf[2048];
        va_list ap;
        int ret = error < 0 ? error : (error > 0 ? -EIO : 0);

        log_init_once();
        if (level > max_level)
                return ret;

        /* %m in format means the error passed in, not the current value of errno. */
        errno = error < 0 ? -error : error;
        va_start(ap, format);
        vsnprintf(buf, sizeof(buf), format, ap);
        va_end(ap);

        if (use_journal) {
                if (field)
                        sd_journal_send("MESSAGE=%s", buf, "PRIORITY=%i", level, "%s", field, NULL);
                else
                        sd_journal_send("MESSAGE=%s", buf, "PRIORITY=%i", level, NULL);
        } else
                fprintf(stderr, "%s\n", buf);

        errno = error < 0 ? -error : error;
        return ret;
}
