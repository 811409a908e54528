#pragma once

#include <stdint.h>

#include <systemd/sd-bus.h>
#include <systemd/sd-event.h>

#include "daemon-config.h"

/* banger-helper's state while it serves org.banger1.Helper. */
typedef struct Helper {
        DaemonConfig *config;
        sd_event *event;
        sd_bus *bus;
        sd_event_source *idle_source;
        uint64_t last_activity_usec; /* CLOCK_MONOTONIC of the last message received */
} Helper;

/* The org.banger1.Helper interface at HELPER_PATH, with a Helper as userdata. */
extern const sd_bus_vtable helper_vtable[];
