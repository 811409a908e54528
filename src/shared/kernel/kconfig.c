#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "kconfig.h"
#include "kernel-util.h"
#include "macro.h"
#include "strv.h"

/* Options a banger guest needs. PVH boots the vmlinux directly and ACPI finds microvm's
 * virtio-mmio devices. The rest cover the initramfs with devtmpfs, the ext4 root disk, the serial
 * console, the network, the agent's virtio console port, and the file systems and sockets that
 * banger-init and an image's systemd use. */
const char *const kconfig_guest_options[] = {
        "CONFIG_PVH",
        "CONFIG_ACPI",
        "CONFIG_BLK_DEV_INITRD",
        "CONFIG_DEVTMPFS",
        "CONFIG_VIRTIO",
        "CONFIG_VIRTIO_MMIO",
        "CONFIG_VIRTIO_BLK",
        "CONFIG_VIRTIO_NET",
        "CONFIG_VIRTIO_CONSOLE",
        "CONFIG_SERIAL_8250_CONSOLE",
        "CONFIG_EXT4_FS",
        "CONFIG_PROC_FS",
        "CONFIG_SYSFS",
        "CONFIG_TMPFS",
        "CONFIG_UNIX",
        "CONFIG_INET",
        "CONFIG_CGROUPS",
        NULL,
};

/* Returns true when the line (length bytes) is "option=y" or "option=m". */
static bool line_enables(const char *line, size_t length, const char *option)
{
        size_t n = strlen(option);

        while (length > 0 &&
               (line[length - 1] == '\r' || line[length - 1] == ' ' || line[length - 1] == '\t'))
                length--;
        if (length != n + 2 || memcmp(line, option, n) != 0 || line[n] != '=')
                return false;
        return line[n + 1] == 'y' || line[n + 1] == 'm';
}

static bool text_enables(const char *text, size_t size, const char *option)
{
        const char *p = text, *end = text + size;

        while (p < end) {
                const char *nl = memchr(p, '\n', (size_t)(end - p));
                size_t length = nl ? (size_t)(nl - p) : (size_t)(end - p);

                if (line_enables(p, length, option))
                        return true;
                p += length + 1;
        }
        return false;
}

int kconfig_find_missing(const char *text, size_t size, char ***ret)
{
        _cleanup_strv_free_ char **missing = calloc(1, sizeof(char *));
        int r;

        if (!missing)
                return -ENOMEM;
        if (!text && size > 0)
                return -EINVAL;

        for (size_t i = 0; kconfig_guest_options[i]; i++) {
                if (text_enables(text, size, kconfig_guest_options[i]))
                        continue;
                r = strv_extend(&missing, kconfig_guest_options[i]);
                if (r < 0)
                        return r;
        }

        *ret = TAKE_PTR(missing);
        return 0;
}

int kconfig_check_guest(const char *text, size_t size, const char *source_name, char **ret_error)
{
        _cleanup_strv_free_ char **missing = NULL;
        _cleanup_free_ char *list = NULL;
        size_t length = 0;
        int r;

        r = kconfig_find_missing(text, size, &missing);
        if (r < 0)
                return r;
        if (!missing[0])
                return 0;

        for (char **m = missing; *m; m++)
                length += strlen(*m) + 2;
        list = calloc(1, length + 1);
        if (!list)
                return -ENOMEM;
        for (char **m = missing; *m; m++) {
                if (m != missing)
                        strcat(list, ", ");
                strcat(list, *m);
        }

        return error_set(ret_error, -ENOTSUP,
                         "Kernel configuration '%s' lacks options a banger guest needs: %s. "
                         "Use a kernel built with each of them set to y or m",
                         strempty(source_name), list);
}
