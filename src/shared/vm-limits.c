#include <errno.h>
#include <stdio.h>
#include <unistd.h>

#include "macro.h"
#include "vm-limits.h"

#define VCPUS_PER_HOST_CPU 4

unsigned vm_vcpus_limit(long host_cpus)
{
        if (host_cpus < 1)
                host_cpus = 1;
        if (host_cpus > VM_VCPUS_MAX / VCPUS_PER_HOST_CPU)
                return VM_VCPUS_MAX;
        return (unsigned)host_cpus * VCPUS_PER_HOST_CPU;
}

int vm_resources_check(const char *name, unsigned vcpus, unsigned memory_mib, long host_cpus,
                       uint64_t host_memory_mib, char **ret_message)
{
        unsigned vcpus_limit = vm_vcpus_limit(host_cpus);
        int r = 0;

        if (vcpus == 0 || vcpus > vcpus_limit)
                r = ret_message ? asprintf(ret_message,
                                           "Invalid vcpus %u for VM '%s': pass 1 to %u, the limit "
                                           "on this host with %ld CPUs (4 per CPU, at most %u)",
                                           vcpus, name, vcpus_limit, host_cpus, VM_VCPUS_MAX)
                                : 0;
        else if (memory_mib < VM_MEMORY_MIB_MIN)
                r = ret_message ? asprintf(ret_message,
                                           "Invalid memory-mib %u for VM '%s': pass at least %u",
                                           memory_mib, name, VM_MEMORY_MIB_MIN)
                                : 0;
        else if (memory_mib > host_memory_mib)
                r = ret_message ? asprintf(ret_message,
                                           "Invalid memory-mib %u for VM '%s': the host has %llu "
                                           "MiB of physical memory, pass %u to %llu",
                                           memory_mib, name, (unsigned long long)host_memory_mib,
                                           VM_MEMORY_MIB_MIN, (unsigned long long)host_memory_mib)
                                : 0;
        else
                return 0;

        if (r < 0)
                return -ENOMEM;
        return -EINVAL;
}

int vm_host_resources(long *ret_cpus, uint64_t *ret_memory_mib)
{
        long cpus = sysconf(_SC_NPROCESSORS_ONLN);
        long pages = sysconf(_SC_PHYS_PAGES);
        long page_size = sysconf(_SC_PAGESIZE);

        if (cpus < 1 || pages < 1 || page_size < 1)
                return -EOPNOTSUPP;
        *ret_cpus = cpus;
        *ret_memory_mib = ((uint64_t)pages * (uint64_t)page_size) >> 20;
        return 0;
}
