#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "firecracker.h"

/* Feeds one response of Firecracker's API, which bangerd treats as untrusted, to the response
 * check. The first byte picks the HTTP status, the rest is the body. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        static const long statuses[] = { 200, 204, 400, 404, 500 };
        char *error = NULL;
        long status;
        int r;

        if (size < 1)
                return 0;
        status = statuses[data[0] % (sizeof(statuses) / sizeof(statuses[0]))];

        r = firecracker_response_check("PUT", "/actions", status, (const char *)data + 1, size - 1,
                                       &error);

        /* A 2xx status of a body within the limit is success, anything else carries a
         * message. */
        if (r == 0 && (status >= 300 || error))
                __builtin_trap();
        if (r < 0 && (!error || strlen(error) == 0))
                __builtin_trap();

        free(error);
        return 0;
}
