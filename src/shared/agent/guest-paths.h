#pragma once

/* The layout of a VM's work disk, which bangerd builds on the host and banger-init mounts in
 * the guest at GUEST_WORK_MOUNT. The WORKDISK_* paths are relative to the disk's root, and
 * GUEST_WORK_PATH() turns one into the path inside the guest. This header includes nothing, so
 * the static guest programs can use it. */

#define GUEST_WORK_MOUNT "/work"

#define WORKDISK_META_DIR        ".banger" /* mode 0700, owned by root */
#define WORKDISK_CONFIG          WORKDISK_META_DIR "/vm.conf"
#define WORKDISK_AUTHORIZED_KEYS WORKDISK_META_DIR "/authorized_keys"
#define WORKDISK_HOST_KEY        WORKDISK_META_DIR "/ssh_host_ed25519_key"
#define WORKDISK_HOST_KEY_PUB    WORKDISK_HOST_KEY ".pub"

/* For a string literal: GUEST_WORK_PATH(WORKDISK_CONFIG) is "/work/.banger/vm.conf". */
#define GUEST_WORK_PATH(relative) GUEST_WORK_MOUNT "/" relative
