#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "catalog.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        Catalog *catalog = NULL;
        char *error = NULL;
        const CatalogKernel *k;

        if (catalog_parse((const char *)data, size, "http://127.0.0.1:8080/a/index.json", &catalog,
                          &error) == 0) {
                if (catalog->n_kernels > 0)
                        (void)catalog_find(catalog, catalog->kernels[0].name, "amd64", &k);
                catalog_free(catalog);
        }
        free(error);
        return 0;
}
