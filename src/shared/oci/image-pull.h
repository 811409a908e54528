#pragma once

#include <stdbool.h>
#include <stdint.h>

/* Pulling an OCI image from a registry into a new ext4 file.
 *
 * image_pull() is synchronous and thread-safe: bangerd runs it in a worker thread. It touches no
 * global state except curl_global_init(), which the program calls once at start. */

typedef enum ImagePullStep {
        IMAGE_PULL_STEP_RESOLVE,  /* reading the manifest or index */
        IMAGE_PULL_STEP_DOWNLOAD, /* fetching blobs into the cache */
        IMAGE_PULL_STEP_VERIFY,   /* checking digests */
        IMAGE_PULL_STEP_UNPACK,   /* applying layers to the ext4 file */
        _IMAGE_PULL_STEP_MAX,
        _IMAGE_PULL_STEP_INVALID = -1,
} ImagePullStep;

/* "resolve", "download", "verify", "unpack". */
const char *image_pull_step_to_string(ImagePullStep step);

/* Called from the pulling thread; done and total are bytes, total is 0 when unknown. */
typedef void (*ImagePullProgress)(ImagePullStep step, uint64_t done, uint64_t total,
                                  void *userdata);

typedef struct ImagePullOptions {
        const char *reference;        /* as typed by the user: "busybox", "127.0.0.1:5000/b:1" */
        const char *blob_cache_dir;   /* verified blobs live in DIR/sha256/HEX */
        const char *output_path;      /* the ext4 file to create; must not exist */
        char **insecure_registries;   /* "host[:port]" entries reached over plain HTTP */
        const char *ca_file;          /* PEM CA certificates trusted besides the system's */
        const char *credentials_file; /* docker config.json; NULL pulls anonymously */
        char **mirrors;               /* "REGISTRY=URL" entries, see registry_mirror_parse() */
        const char *os;               /* platform to select from an index: "linux" */
        const char *architecture;     /* "amd64" */
        ImagePullProgress progress;   /* may be NULL */
        void *userdata;
        const volatile bool *cancel; /* when it becomes true the pull stops with -ECANCELED */
} ImagePullOptions;

typedef struct ImageInfo {
        char *name;          /* normalised reference, see oci_reference_normalize() */
        char *reference;     /* as given by the user */
        char *digest;        /* digest of the image manifest: "sha256:HEX" */
        char *platform;      /* "linux/amd64" */
        uint64_t size_bytes; /* size of the ext4 file */
        char **entrypoint;   /* from the image config; NULL when unset */
        char **cmd;
        char **env;
        char *user;        /* NULL when unset */
        char *working_dir; /* NULL when unset */
        uint64_t created_usec;
} ImageInfo;

ImageInfo *image_info_free(ImageInfo *info);
static inline void image_info_freep(ImageInfo **p)
{
        image_info_free(*p);
}

/* Serialises to and from the JSON record bangerd stores beside the ext4 file. */
int image_info_to_json(const ImageInfo *info, char **ret);
int image_info_from_json(const char *json, ImageInfo **ret);

/* Turns a user's reference into the canonical name that keys the image store:
 * "busybox" -> "docker.io/library/busybox:latest",
 * "127.0.0.1:5000/busybox" -> "127.0.0.1:5000/busybox:latest",
 * "r/x@sha256:HEX" keeps the digest. Returns -EINVAL for a malformed reference. */
int oci_reference_normalize(const char *reference, char **ret);

/* Pulls opts->reference and writes the root file system to opts->output_path. On failure
 * nothing is left at output_path, a negative errno is returned, and *ret_error (when not NULL)
 * receives a message for the user that names the failing value and what to do, for example
 * "Registry '127.0.0.1:5999' is not reachable (Connection refused): check that it runs". */
int image_pull(const ImagePullOptions *opts, ImageInfo **ret, char **ret_error);
