/* A UDP echo server for the network scenario's guests, whose busybox has no UDP server.
 *
 * Usage: udp-echo PORT
 *
 * Binds 0.0.0.0:PORT, then detaches into the background, so a caller that waits for it to exit
 * knows the port is bound. Each datagram goes back to its sender prefixed with "echo ".
 * Built with -static by the scenario, so it runs on any x86-64 guest. */

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

int main(int argc, char **argv)
{
        static const char prefix[] = "echo ";
        struct sockaddr_in addr = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_ANY) };
        char buf[2048];
        char *end;
        long port;
        int fd;

        if (argc != 2) {
                fprintf(stderr, "usage: udp-echo PORT\n");
                return 2;
        }
        port = strtol(argv[1], &end, 10);
        if (*argv[1] == '\0' || *end != '\0' || port < 1 || port > 65535) {
                fprintf(stderr, "udp-echo: invalid port '%s', expected 1 to 65535\n", argv[1]);
                return 2;
        }
        addr.sin_port = htons((uint16_t)port);

        fd = socket(AF_INET, SOCK_DGRAM, 0);
        if (fd < 0 || bind(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0) {
                fprintf(stderr, "udp-echo: failed to bind UDP port %ld: %s\n", port,
                        strerror(errno));
                return 1;
        }
        if (daemon(0, 0) < 0) {
                fprintf(stderr, "udp-echo: failed to detach: %s\n", strerror(errno));
                return 1;
        }

        memcpy(buf, prefix, sizeof(prefix) - 1);
        for (;;) {
                struct sockaddr_in peer;
                socklen_t peer_len = sizeof(peer);
                ssize_t n;

                n = recvfrom(fd, buf + sizeof(prefix) - 1, sizeof(buf) - sizeof(prefix) + 1, 0,
                             (struct sockaddr *)&peer, &peer_len);
                if (n < 0)
                        continue;
                (void)sendto(fd, buf, (size_t)n + sizeof(prefix) - 1, 0, (struct sockaddr *)&peer,
                             peer_len);
        }
}
