// The C runtime's view of the bootstrap message (sysroot/src/crt1.c).
#pragma once

#include <magenta/types.h>

__BEGIN_CDECLS

// Takes the bootstrap handle with handle-info PA_HND(type, arg): the caller
// owns it. MX_HANDLE_INVALID if it was not sent or was taken already.
mx_handle_t mxrt_take_handle(uint32_t info);

// The runtime's own handles (owned by the runtime; do not close them).
mx_handle_t mx_process_self(void);
mx_handle_t mx_thread_self(void);
mx_handle_t mx_vmar_root_self(void);
mx_handle_t mx_job_default(void);

__END_CDECLS
