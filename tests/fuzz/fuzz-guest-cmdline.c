#include <arpa/inet.h>
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "guest-net.h"

/* Parses arbitrary bytes as a kernel command line. An error must come with a message, and a
 * network that parses must print as parameters that parse again to the same network. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        char error[GUEST_NET_ERROR_MAX] = "", address[INET_ADDRSTRLEN], gateway[INET_ADDRSTRLEN],
             dns[INET_ADDRSTRLEN], again_text[256];
        GuestNet net = {}, again = {};
        char *cmdline;
        int r;

        cmdline = malloc(size + 1);
        if (!cmdline)
                return 0;
        memcpy(cmdline, data, size);
        cmdline[size] = '\0';

        r = guest_net_parse_cmdline(cmdline, &net, error, sizeof(error));
        free(cmdline);
        if (r == -EINVAL && error[0] != '\0')
                return 0;
        if (r == 0 && error[0] == '\0')
                return 0;
        if (r != 1 || net.prefix < 1 || net.prefix > 32)
                abort();

        inet_ntop(AF_INET, &net.address, address, sizeof(address));
        inet_ntop(AF_INET, &net.gateway, gateway, sizeof(gateway));
        inet_ntop(AF_INET, &net.dns, dns, sizeof(dns));
        snprintf(again_text, sizeof(again_text),
                 "banger.dns=%s banger.address=%s/%u banger.gateway=%s", dns, address, net.prefix,
                 gateway);
        if (guest_net_parse_cmdline(again_text, &again, NULL, 0) != 1 ||
            memcmp(&net, &again, sizeof(net)) != 0)
                abort();
        return 0;
}
