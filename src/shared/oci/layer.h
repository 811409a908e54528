#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ext4.h"

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
