/* Feeds one input to every registry document parser: the document kind check, index platform
 * selection, manifest and image config parsing. */

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "oci-manifest.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        const char *json = (const char *)data;
        OciManifest *manifest = NULL;
        OciImageConfig *config = NULL;
        OciDescriptor descriptor = {};
        OciDocumentKind kind;
        char *error = NULL;

        (void)oci_document_kind(json, size, OCI_MEDIA_TYPE_MANIFEST, &kind, &error);
        free(error);
        error = NULL;

        (void)oci_index_select(json, size, "linux", "amd64", &descriptor, &error);
        oci_descriptor_done(&descriptor);
        free(error);
        error = NULL;

        (void)oci_manifest_parse(json, size, &manifest, &error);
        oci_manifest_free(manifest);
        free(error);
        error = NULL;

        (void)oci_image_config_parse(json, size, &config, &error);
        oci_image_config_free(config);
        free(error);
        return 0;
}
