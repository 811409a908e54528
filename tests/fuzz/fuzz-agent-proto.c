#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

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

                pos += consumed;
        }
        return 0;
}
