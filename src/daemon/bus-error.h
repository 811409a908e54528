#pragma once

#include <systemd/sd-bus.h>

#define BUS_ERROR_NOT_FOUND        "org.banger1.Error.NotFound"
#define BUS_ERROR_EXISTS           "org.banger1.Error.Exists"
#define BUS_ERROR_INVALID_ARGUMENT "org.banger1.Error.InvalidArgument"
#define BUS_ERROR_BUSY             "org.banger1.Error.Busy"
#define BUS_ERROR_ACCESS_DENIED    "org.banger1.Error.AccessDenied"
#define BUS_ERROR_PULL_FAILED      "org.banger1.Error.PullFailed"
#define BUS_ERROR_IMPORT_FAILED    "org.banger1.Error.ImportFailed"
#define BUS_ERROR_BOOT_FAILED      "org.banger1.Error.BootFailed"
#define BUS_ERROR_AGENT_FAILED     "org.banger1.Error.AgentFailed"
#define BUS_ERROR_NOT_RUNNING      "org.banger1.Error.NotRunning"

/* Maps banger's error names to errno values; registered with sd_bus_error_add_map() by
 * bangerd and by clients so sd_bus_error_get_errno() returns a useful value. */
extern const sd_bus_error_map banger_error_map[];

/* Reads the a{sv} options argument of a method that takes no options. Fails with error set to
 * InvalidArgument when the dictionary has a key. */
int bus_reject_options(sd_bus_message *message, const char *method, sd_bus_error *error);
