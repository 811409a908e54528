#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "agent-ports.h"

/* Feeds each line of the input to the /proc/net line parser as both families, the way
 * agent_ports_collect() reads /proc/net/{tcp,tcp6,udp,udp6}. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        char *text = malloc(size + 1);
        char *line, *next;

        if (!text)
                return 0;
        memcpy(text, data, size);
        text[size] = '\0';

        for (line = text; line; line = next) {
                static const int families[] = { AF_INET, AF_INET6 };

                next = strchr(line, '\n');
                if (next)
                        *next++ = '\0';

                for (size_t i = 0; i < 2; i++) {
                        ProcNetSocket s;
                        int r = proc_net_parse_line(line, families[i], &s);

                        if (r != 1 && r != 0 && r != -EBADMSG)
                                abort();
                        if (r == 1 && (s.family != families[i] ||
                                       (s.family == AF_INET &&
                                        memcmp(s.address + 4, (uint8_t[12]){}, 12) != 0)))
                                abort();
                }
        }

        free(text);
        return 0;
}
