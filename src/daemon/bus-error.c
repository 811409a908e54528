#include <errno.h>

#include "bus-error.h"

const sd_bus_error_map banger_error_map[] = {
        SD_BUS_ERROR_MAP(BUS_ERROR_NOT_FOUND, ENOENT),
        SD_BUS_ERROR_MAP(BUS_ERROR_EXISTS, EEXIST),
        SD_BUS_ERROR_MAP(BUS_ERROR_INVALID_ARGUMENT, EINVAL),
        SD_BUS_ERROR_MAP(BUS_ERROR_BUSY, EBUSY),
        SD_BUS_ERROR_MAP(BUS_ERROR_ACCESS_DENIED, EACCES),
        SD_BUS_ERROR_MAP(BUS_ERROR_PULL_FAILED, EIO),
        SD_BUS_ERROR_MAP(BUS_ERROR_IMPORT_FAILED, EIO),
        SD_BUS_ERROR_MAP(BUS_ERROR_BOOT_FAILED, EIO),
        SD_BUS_ERROR_MAP(BUS_ERROR_AGENT_FAILED, EIO),
        SD_BUS_ERROR_MAP(BUS_ERROR_NOT_RUNNING, ESRCH),
        SD_BUS_ERROR_MAP_END,
};

int bus_reject_options(sd_bus_message *message, const char *method, sd_bus_error *error)
{
        const char *key;
        int r;

        r = sd_bus_message_enter_container(message, 'a', "{sv}");
        if (r < 0)
                return r;
        r = sd_bus_message_enter_container(message, 'e', "sv");
        if (r < 0)
                return r;
        if (r > 0) {
                r = sd_bus_message_read(message, "s", &key);
                if (r < 0)
                        return r;
                return sd_bus_error_setf(error, BUS_ERROR_INVALID_ARGUMENT,
                                         "Unknown %s option '%s': %s takes no options, pass an "
                                         "empty dictionary",
                                         method, key, method);
        }
        return sd_bus_message_exit_container(message);
}
