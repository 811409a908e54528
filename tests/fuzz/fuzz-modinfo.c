#include <stddef.h>
#include <stdint.h>

#include "kmod.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        ModInfo *info = NULL;

        if (modinfo_parse(data, size, &info) == 0)
                modinfo_free(info);
        return 0;
}
