#include <stddef.h>
#include <stdint.h>

#include "qmp.h"

/* Feeds one line of QEMU's QMP output, which bangerd treats as untrusted, to the parser. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        QmpMessage m;

        if (qmp_message_parse((const char *)data, size, &m) < 0)
                return 0;

        /* Every field that a successful parse promises must be readable. */
        if (m.type == QMP_MESSAGE_ERROR && (!m.error_class || !m.error_desc))
                __builtin_trap();
        if (m.type == QMP_MESSAGE_EVENT && (!m.event || !m.value))
                __builtin_trap();
        if (m.type == QMP_MESSAGE_GREETING && !m.value)
                __builtin_trap();

        qmp_message_done(&m);
        return 0;
}
