#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kernel-import.h"

/* Kernels from a catalog: an index JSON served over http or https that lists kernels and the
 * URLs and sha256 digests of their files. docs/kernel-catalog.md describes the format. */

typedef enum CatalogArtifactType {
        CATALOG_ARTIFACT_VMLINUX,
        CATALOG_ARTIFACT_MODULES,
        CATALOG_ARTIFACT_CONFIG,
        _CATALOG_ARTIFACT_MAX,
        _CATALOG_ARTIFACT_INVALID = -1,
} CatalogArtifactType;

const char *catalog_artifact_type_to_string(CatalogArtifactType t);

typedef struct CatalogArtifact {
        char *url;    /* absolute http or https URL; NULL when the kernel has no such artifact */
        char *sha256; /* 64 lower-case hex digits */
} CatalogArtifact;

typedef struct CatalogKernel {
        char *name;    /* store key, a valid kernel name */
        char *version; /* kernel release, the VERSION of lib/modules/VERSION */
        char *arch;    /* architecture in OCI terms: "amd64", "arm64" */
        CatalogArtifact artifacts[_CATALOG_ARTIFACT_MAX];
} CatalogKernel;

typedef struct Catalog {
        CatalogKernel *kernels;
        size_t n_kernels;
} Catalog;

Catalog *catalog_free(Catalog *c);
static inline void catalog_freep(Catalog **c)
{
        catalog_free(*c);
}

/* Resolves reference (absolute, or relative as in RFC 3986) against base_url. Returns -EINVAL
 * for a malformed URL and -EPROTONOSUPPORT when the result is not http or https. */
int catalog_resolve_url(const char *base_url, const char *reference, char **ret);

/* Parses an index of size bytes fetched from base_url, which relative artifact URLs resolve
 * against. Returns -EBADMSG for an invalid index, with *ret_error (when not NULL) naming the
 * entry and field at fault. Two entries with the same name and architecture are invalid. */
int catalog_parse(const char *json, size_t size, const char *base_url, Catalog **ret,
                  char **ret_error);

/* Finds the entry for name and arch. Returns -ENOENT when no entry has that name and -ENXIO
 * when entries have the name but none has arch. */
int catalog_find(const Catalog *c, const char *name, const char *arch, const CatalogKernel **ret);

typedef void (*CatalogProgress)(const char *step, uint64_t done, uint64_t total, void *userdata);

typedef struct CatalogPullOptions {
        const char *catalog_url;     /* the index */
        const char *name;            /* catalog entry, also the store key */
        const char *arch;            /* "amd64" etc. */
        const char *output_dir;      /* existing empty directory, as for kernel_import() */
        const char *init_path;       /* banger-init binary, becomes /init */
        const char *agent_path;      /* banger-agent binary */
        const volatile bool *cancel; /* NULL, or set from another thread to stop a download */
        CatalogProgress progress;    /* NULL, or called with the step ("download" for each
                                      * file, then "build") and the bytes so far */
        void *userdata;
} CatalogPullOptions;

/* Fetches the index, downloads the entry's artifacts into a staging directory under
 * output_dir, verifies each sha256, checks the kernel configuration when the entry has one,
 * unpacks the modules tarball and imports the kernel with kernel_import(). On failure nothing
 * is left in output_dir, a negative errno is returned and *ret_error (when not NULL) names the
 * value and the fix. A digest mismatch returns -EBADMSG. */
int catalog_pull_kernel(const CatalogPullOptions *opts, KernelInfo **ret, char **ret_error);
