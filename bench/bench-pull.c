/* Pulls one image into an ext4 file through image_pull(), as bangerd's PullImage job does, so
 * bench/pull-to-ext4.sh can time the library without a daemon or a bus.
 *
 * Usage: bench-pull REFERENCE BLOB_CACHE_DIR OUTPUT.ext4 [INSECURE_REGISTRY]
 * Exits 0 on success and prints the image digest and file size. */

#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>

#include "image-pull.h"
#include "macro.h"

int main(int argc, char *argv[])
{
        _cleanup_(image_info_freep) ImageInfo *info = NULL;
        _cleanup_free_ char *error = NULL;
        char *insecure[] = { argc > 4 ? argv[4] : NULL, NULL };
        int r;

        if (argc < 4 || argc > 5) {
                fprintf(stderr,
                        "Usage: %s REFERENCE BLOB_CACHE_DIR OUTPUT.ext4 "
                        "[INSECURE_REGISTRY]\n",
                        argv[0]);
                return EXIT_FAILURE;
        }

        if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
                fprintf(stderr, "Failed to initialise libcurl\n");
                return EXIT_FAILURE;
        }

        ImagePullOptions opts = {
                .reference = argv[1],
                .blob_cache_dir = argv[2],
                .output_path = argv[3],
                .insecure_registries = insecure,
                .os = "linux",
                .architecture = "amd64",
        };
        r = image_pull(&opts, &info, &error);
        curl_global_cleanup();
        if (r < 0) {
                fprintf(stderr, "%s\n", error ? error : "Failed to pull the image");
                return EXIT_FAILURE;
        }

        printf("%s %llu\n", info->digest, (unsigned long long)info->size_bytes);
        return EXIT_SUCCESS;
}
