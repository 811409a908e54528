#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ext4.h"
#include "oci-manifest.h"

/* Applying OCI image layers (tar archives, gzip or zstd compressed or uncompressed, detected
 * from the content) to an ext4 file system, with whiteouts and opaque directories as the OCI
 * image specification's layer format defines them. Layers are untrusted input: an entry whose
 * path or hardlink target leaves the root after normalisation is rejected. */

/* Totals over one or more layers, for sizing the file system. */
typedef struct LayerStats {
        uint64_t entries;     /* tar entries of any type */
        uint64_t data_blocks; /* 4 KiB blocks of regular file content, each file rounded up */
} LayerStats;

typedef struct LayerApplyOptions {
        const volatile bool *cancel; /* may be NULL; when it becomes true, -ECANCELED */
        /* Called after each entry with the bytes of the layer blob consumed so far. */
        void (*progress)(uint64_t done, void *userdata);
        void *userdata;
} LayerApplyOptions;

/* Adds the entry count and data size of the layer at path to *stats. */
int layer_scan_file(const char *path, LayerStats *stats, char **ret_error);

/* Applies the layer in the file at path, or in memory. On failure the file system is left
 * partly modified, and *ret_error (when not NULL) receives a message naming the entry. */
int layer_apply_file(Ext4Writer *w, const char *path, const LayerApplyOptions *opts,
                     char **ret_error);
int layer_apply_memory(Ext4Writer *w, const void *data, size_t size, const LayerApplyOptions *opts,
                       char **ret_error);

/* Removes /etc/ssh/ssh_host_* so every VM gets its own host keys. */
int layer_drop_ssh_host_keys(Ext4Writer *w);

/* Normalises a tar entry path: drops leading '/', empty and "." components and resolves "..".
 * Returns -EINVAL when ".." would leave the root. *ret is "" for the root itself. */
int layer_normalize_path(const char *path, char **ret);

/* The input of layer_build_image(). */
typedef struct LayerImageOptions {
        char *const *layer_paths; /* NULL-terminated, applied in this order */
        /* The layers' descriptors, in the same order, or NULL. Their digests name the failing
         * layer in error messages. */
        const OciDescriptor *layers;
        const char *name;        /* the image's name in error messages */
        const char *output_path; /* the ext4 file to publish, which must not exist yet */
        LayerApplyOptions apply;
        /* Called with apply.userdata after the layer at index is applied, or NULL. */
        void (*layer_done)(size_t index, void *userdata);
} LayerImageOptions;

/* Sizes an ext4 file system for the layers and applies them in order to a temporary file next
 * to output_path. Then removes the SSH host keys and renames the file to output_path, without
 * replacing a file created there meanwhile. Returns the size of the file system in bytes in
 * *ret_size, -ECANCELED when apply.cancel was set, or another negative errno with a message in
 * *ret_error. */
int layer_build_image(const LayerImageOptions *opts, uint64_t *ret_size, char **ret_error);
