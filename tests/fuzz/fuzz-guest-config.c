#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "guest-config.h"

/* Parses arbitrary bytes. Whatever parses must format and parse again to the same text. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        GuestConfig *c = NULL, *again = NULL;
        char *text = NULL, *text2 = NULL;

        if (guest_config_parse((const char *)data, size, &c, NULL) < 0)
                return 0;

        if (guest_config_format(c, &text) < 0)
                abort();
        if (guest_config_parse(text, strlen(text), &again, NULL) < 0)
                abort();
        if (guest_config_format(again, &text2) < 0 || strcmp(text, text2) != 0)
                abort();

        free(text);
        free(text2);
        guest_config_free(c);
        guest_config_free(again);
        return 0;
}
