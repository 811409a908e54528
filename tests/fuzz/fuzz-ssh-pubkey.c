#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hostkey.h"

/* Parses arbitrary bytes as a public key line. Whatever parses must parse again, rebuilt from
 * its type and base64 data, to the same parts, and must have a fingerprint. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        char *type = NULL, *b64 = NULL, *line = NULL, *type2 = NULL, *b64_2 = NULL;
        char *fingerprint = NULL;

        if (ssh_pubkey_parse_bytes((const char *)data, size, &type, &b64) < 0)
                return 0;

        if (asprintf(&line, "%s %s", type, b64) < 0)
                abort();
        if (ssh_pubkey_parse(line, &type2, &b64_2) < 0)
                abort();
        if (strcmp(type, type2) != 0 || strcmp(b64, b64_2) != 0)
                abort();
        if (ssh_pubkey_fingerprint(line, &fingerprint) < 0 ||
            strncmp(fingerprint, "SHA256:", 7) != 0)
                abort();

        free(type);
        free(b64);
        free(line);
        free(type2);
        free(b64_2);
        free(fingerprint);
        return 0;
}
