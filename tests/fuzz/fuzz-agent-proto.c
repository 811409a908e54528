#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "agent-proto.h"

/* Feeds arbitrary bytes through the decoder the way the client and the agent do: decode, skip
 * ahead after an error, and decode the payload of every frame that comes out. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        size_t pos = 0;

        while (pos < size) {
                AgentFrame f;
                size_t consumed;
                int r;

                r = agent_frame_decode(data + pos, size - pos, &f, &consumed);
                if (r == 0) {
                        size_t hello = agent_frame_find_hello(data + pos, size - pos);
                        if (hello == 0)
                                break;
                        if (hello >= size - pos)
                                abort();
                        pos += hello;
                        continue;
                }
                if (r < 0) {
                        size_t skip = agent_frame_resync(data + pos, size - pos);
                        if (skip == 0)
                                abort();
                        pos += skip;
                        continue;
                }
                if (consumed > size - pos || f.payload_size > AGENT_FRAME_MAX)
                        abort();

                AgentHello h;
                AgentExec e;
                AgentExit x;
                AgentError err;
                AgentPortList ports;
                uint32_t credit, rows, cols;

                if (agent_hello_decode(&f, &h) >= 0)
                        agent_hello_done(&h);
                if (agent_exec_decode(&f, &e) >= 0) {
                        if (!e.argv || !e.argv[0])
                                abort();
                        agent_exec_done(&e);
                }
                (void)agent_exit_decode(&f, &x);
                if (agent_error_decode(&f, &err) >= 0)
                        agent_error_done(&err);
                if (agent_window_decode(&f, &credit) >= 0 && credit == 0)
                        abort();
                if (agent_resize_decode(&f, &rows, &cols) >= 0 &&
                    (rows == 0 || rows > UINT16_MAX || cols == 0 || cols > UINT16_MAX))
                        abort();
                if (agent_ports_reply_decode(&f, &ports) >= 0) {
                        if (ports.n_ports > AGENT_PORTS_MAX)
                                abort();
                        for (size_t i = 0; i < ports.n_ports; i++)
                                if (strnlen(ports.ports[i].comm, sizeof(ports.ports[i].comm)) ==
                                    sizeof(ports.ports[i].comm))
                                        abort();
                        agent_port_list_done(&ports);
                }

                pos += consumed;
        }
        return 0;
}
