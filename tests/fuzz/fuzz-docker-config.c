/* Feeds one input to the credentials file parser and looks up the registry names that image
 * references use, including Docker Hub's. PATH points to a directory that does not exist, so a
 * credential helper that an input names fails to start and no program ever runs. */

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "credentials.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
        (void)argc;
        (void)argv;
        setenv("PATH", "/nonexistent", 1);
        return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        static const char *const registries[] = { "docker.io", "127.0.0.1:5000", "r.example" };
        DockerConfig *config = NULL;
        char *error = NULL;

        if (docker_config_parse((const char *)data, size, "fuzz.json", &config, &error) == 0)
                for (size_t i = 0; i < sizeof(registries) / sizeof(registries[0]); i++) {
                        RegistryCredential *credential = NULL;
                        char *find_error = NULL;

                        (void)docker_config_find_credential(config, registries[i], &credential,
                                                            &find_error);
                        registry_credential_free(credential);
                        free(find_error);
                }
        docker_config_free(config);
        free(error);
        return 0;
}
