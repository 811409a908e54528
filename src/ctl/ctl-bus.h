#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <json-c/json.h>
#include <systemd/sd-bus.h>

#include "ctl-format.h"

/* The client side of banger's D-Bus API (docs/API.md), shared by bangerctl's verbs. Failures
 * are printed to stderr by the function that detects them, in the form "bangerctl: Failed to ...:
 * <reason>", so callers only pass the negative errno on. */

#define BANGER_SERVICE       "org.banger1"
#define BANGER_MANAGER_PATH  "/org/banger1"
#define BANGER_MANAGER_IFACE "org.banger1.Manager"
#define BANGER_VM_IFACE      "org.banger1.VM"
#define BANGER_IMAGE_IFACE   "org.banger1.Image"
#define BANGER_KERNEL_IFACE  "org.banger1.Kernel"
#define BANGER_JOB_IFACE     "org.banger1.Job"
#define BANGER_ERROR_ACCESS  "org.banger1.Error.AccessDenied"

/* Timeout of calls that change state. They may wait for a password prompt or a guest boot, so
 * they wait until the daemon answers or the user interrupts. sd-bus treats UINT64_MAX as no
 * timeout (calc_elapse() in sd-bus.c). */
#define CTL_TIMEOUT_INFINITE UINT64_MAX

/* Connects to the system bus. With ask_password, method calls carry the flag that lets polkit
 * ask the user for authentication. */
int ctl_bus_open(sd_bus **ret, bool ask_password);

/* Starts pkttyagent, so that polkit can ask for a password on this terminal, when
 * authentication prompts are enabled and stdin and stderr are terminals. */
void ctl_polkit_agent_open(void);

/* Stops the agent started by ctl_polkit_agent_open(), if any. */
void ctl_polkit_agent_close(void);

/* Prints "bangerctl: <formatted text>: <reason>", the reason being the bus error's message when
 * it has one and strerror(-r) otherwise, plus a hint for authorization errors. Returns r, or
 * -EIO when r is not negative. */
int ctl_log_bus_error(const sd_bus_error *error, int r, const char *format, ...)
        __attribute__((format(printf, 3, 4)));

/* Prints "bangerctl: <formatted text>: strerror(-r)" and returns r. */
int ctl_log_errno(int r, const char *format, ...) __attribute__((format(printf, 2, 3)));

/* Creates a method call to bangerd. */
int ctl_message_new(sd_bus *bus, sd_bus_message **ret, const char *path, const char *interface,
                    const char *member);

/* Sends m and waits for the reply. On failure prints the error prefixed with what (a full
 * phrase such as "Failed to start VM 'dev1'"). */
int ctl_call(sd_bus *bus, sd_bus_message *m, uint64_t timeout_usec, const char *what,
             sd_bus_message **ret_reply);

/* Looks up an object path with the Manager's getter ("GetVM", "GetImage", "GetKernel"). */
int ctl_get_object(sd_bus *bus, const char *getter, const char *name, const char *what,
                   char **ret_path);

/* Reads property of interface on path. On success *ret_reply is positioned inside the variant,
 * whose contents must have the signature type. */
int ctl_get_property(sd_bus *bus, const char *path, const char *interface, const char *property,
                     const char *type, const char *what, sd_bus_message **ret_reply);

/* Reads all properties of interface on path into a JSON object keyed by property name. */
int ctl_get_properties(sd_bus *bus, const char *path, const char *interface, const char *what,
                       json_object **ret);

/* Converts the next complete value in m (of any D-Bus type) to JSON. Byte arrays become arrays
 * of numbers, and file descriptors become their number. */
int ctl_message_read_json(sd_bus_message *m, json_object **ret);

/* Looks up the object called name with getter and reads all properties of interface on it, as
 * ctl_get_properties() does. */
int ctl_get_object_properties(sd_bus *bus, const char *getter, const char *name,
                              const char *interface, const char *what, json_object **ret);

/* Prints properties as "Name=value" lines, or as a JSON object with json. */
int ctl_print_properties(json_object *properties, bool json);

/* Looks up the object called name with getter and prints all properties of interface on it:
 * "Name=value" lines, or a JSON object with json. */
int ctl_show_object(sd_bus *bus, const char *getter, const char *name, const char *interface,
                    const char *what, bool json);

/* Prints a JSON value to stdout, pretty-printed on a terminal, followed by a newline. */
int ctl_print_json(json_object *j);

/* Reads one row of a list reply into array when it is not NULL, into t otherwise. Returns 1
 * after a row, 0 at the end of the list, or a negative errno. */
typedef int (*CtlReadRow)(sd_bus_message *reply, Table *t, json_object *array);

/* Reads the array of row_type at the read position of reply and prints its rows: a table with
 * header, or a JSON array with json. what is the message prefix on failure. */
int ctl_print_array(sd_bus_message *reply, const char *row_type, const char *const *header,
                    size_t n_columns, bool json, CtlReadRow read_row, const char *what);

/* Calls the Manager's list method, whose reply is an array of row_type, and prints the rows as
 * ctl_print_array() does. */
int ctl_list(sd_bus *bus, const char *method, const char *row_type, const char *const *header,
             size_t n_columns, bool json, CtlReadRow read_row, const char *what);

typedef struct JobWatch JobWatch;

/* Subscribes to the signals of all jobs. Call it before the method that returns the job, so
 * that no signal of the new job is missed. */
int job_watch_new(JobWatch **ret, sd_bus *bus);
JobWatch *job_watch_free(JobWatch *w);
static inline void job_watch_freep(JobWatch **w)
{
        job_watch_free(*w);
}
#define _cleanup_job_watch_free_ __attribute__((cleanup(job_watch_freep)))

/* Waits until the job at job_path finishes, showing its progress on stderr: a bar on a
 * terminal, one line per step otherwise. Returns 0 when the job is done. On failure it prints
 * "bangerctl: <what>: <the job's error>" and returns a negative errno. */
int job_watch_wait(JobWatch *w, const char *job_path, const char *what);

/* Looks up the object called name with getter, then calls member on it with the arguments
 * given by types and the variable arguments (sd_bus_message_append() syntax), waiting without a
 * timeout. */
int ctl_object_call(sd_bus *bus, const char *getter, const char *name, const char *interface,
                    const char *member, const char *what, const char *types, ...);

/* Like ctl_object_call(), and returns the reply. */
int ctl_object_call_reply(sd_bus *bus, const char *getter, const char *name, const char *interface,
                          const char *member, const char *what, sd_bus_message **ret_reply,
                          const char *types, ...);

/* Formats a newly allocated string; prints "bangerctl: Out of memory" on failure. */
int ctl_format(char **ret, const char *format, ...) __attribute__((format(printf, 2, 3)));

/* Runs a Manager method that returns a job (PullImage, ImportKernel, CreateVM) and waits for the
 * job. m is the prepared call, and the job signals are subscribed to before m is sent. */
int ctl_run_job(sd_bus *bus, sd_bus_message *m, const char *what);
