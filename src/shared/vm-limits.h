#pragma once

#include <stdint.h>

#define VM_MEMORY_MIB_MIN 64
/* xAPIC IDs are 8 bits wide. More vCPUs need x2APIC with interrupt remapping, which banger
 * does not configure. */
#define VM_VCPUS_MAX 255

/* Returns the largest vcpus a VM may have on a host with host_cpus CPUs: 4 per host CPU, so a
 * guest cannot spread over many more threads than the host runs, and at most VM_VCPUS_MAX. */
unsigned vm_vcpus_limit(long host_cpus);

/* Checks the vcpus and memory_mib requested for VM name against the host's CPU count and
 * physical memory in MiB. Returns 0, or -EINVAL with a message that names the value and the
 * limit in *ret_message (when not NULL). */
int vm_resources_check(const char *name, unsigned vcpus, unsigned memory_mib, long host_cpus,
                       uint64_t host_memory_mib, char **ret_message);

/* Reads the host's online CPU count and physical memory in MiB with sysconf(). */
int vm_host_resources(long *ret_cpus, uint64_t *ret_memory_mib);
