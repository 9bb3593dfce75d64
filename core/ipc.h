/*
 * ipc.h -- framing between vigild and a worker on a SOCK_STREAM socketpair.
 *
 * A frame is a header of two little-endian uint32 (payload length, request id) followed by the
 * payload. The payload length has a hard maximum (IPC_MAX_FRAME_DEFAULT, configurable per call);
 * a larger length is a protocol error. ipc_parse works on partial buffers and never allocates
 * (picohttpparser style); ipc_send / ipc_recv are blocking with a poll() timeout.
 * Relies on: libc only.
 */
#ifndef VIGIL_IPC_H
#define VIGIL_IPC_H

#include <stddef.h>
#include <stdint.h>

#include "err.h"

#ifndef IPC_MAX_FRAME_DEFAULT
#define IPC_MAX_FRAME_DEFAULT ((size_t)64 << 20) /* 64 MiB */
#endif
#define IPC_HDR_LEN 8

struct ipc_frame {
    uint32_t id;
    const char *payload; /* borrowed: points into the buffer given to ipc_parse */
    size_t len;
};

/* Parses one frame at the start of buf[0..len) with payload limit max_frame.
 * Returns the number of bytes the frame occupies (> 0) and fills *frame when complete;
 * PE_EAGAIN when more bytes are needed (frame untouched); PE_EPROTO when the declared length
 * is above max_frame. Reads nothing past buf + len. */
long ipc_parse(const char *buf, size_t len, size_t max_frame, struct ipc_frame *frame);

/* Writes the 8-byte header for (len, id) into hdr. */
void ipc_hdr(char hdr[IPC_HDR_LEN], size_t len, uint32_t id);

/* Sends one frame (header + payload, retrying on EINTR / partial writes) with an overall
 * timeout. timeout_ms > 0: non-blocking sendmsg(MSG_NOSIGNAL) + poll; timeout_ms <= 0: blocking
 * writev (SIGPIPE possible: used by the jailed worker, whose filter has no sendmsg). PE_OK;
 * PE_EINVAL if len > max_frame; PE_ETIMEDOUT; PE_EDEAD on EPIPE/ECONNRESET; PE_ESYS. */
int ipc_send(int fd, uint32_t id, const char *payload, size_t len, size_t max_frame, int timeout_ms,
             struct pe_err *err);

/* Receives one frame. On PE_OK *payload is malloc'd (len + 1 bytes, NUL-terminated; caller
 * frees), *len and *id are set. PE_EDEAD on EOF (at a frame boundary or inside one) or reset;
 * PE_EPROTO on an oversized length; PE_ETIMEDOUT; PE_ENOMEM; PE_ESYS. timeout_ms <= 0: none. */
int ipc_recv(int fd, char **payload, size_t *len, uint32_t *id, size_t max_frame, int timeout_ms,
             struct pe_err *err);

#endif
