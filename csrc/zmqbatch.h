/*
 * zmqbatch: many libzmq messages per call, for shmsock's tcp:// and ipc://.
 *
 * pyzmq makes one Python call, and one Python object, per frame: about a
 * microsecond each on the machines shmsock is measured on.  These functions
 * move a whole batch of one-frame messages in one call, copying their data
 * back to back into a caller's buffer (receiving) or out of one (sending),
 * as the shared-memory ring's batch calls do.
 *
 * They are built without libzmq's headers and linked without libzmq: the
 * caller hands them a table of libzmq's own functions (zb_api), found in
 * the libzmq that pyzmq has loaded.  A zmq_msg_t is 64 bytes, 8-aligned, in
 * every libzmq since 4.0 (zmq.h: "unsigned char _[64]" with alignment).
 * Every call is non-blocking (ZMQ_DONTWAIT) and none knows about waiting.
 *
 * The part between the CFFI markers is read verbatim by the cffi build.
 */
#ifndef ZMQBATCH_H
#define ZMQBATCH_H

#include <stddef.h>
#include <stdint.h>

/* CFFI-BEGIN */

#define ZB_AGAIN 1 /* zb_recv: libzmq had nothing more */
#define ZB_HELD 2  /* zb_recv: a frame is held (too large, or one of several) */

typedef struct zb_api {
    int (*msg_init)(void *msg);
    int (*msg_recv)(void *msg, void *socket, int flags);
    void *(*msg_data)(void *msg);
    size_t (*msg_size)(const void *msg);
    int (*msg_more)(const void *msg);
    int (*msg_close)(void *msg);
    int (*send)(void *socket, const void *buf, size_t len, int flags);
    int (*getsockopt)(void *socket, int option, void *value, size_t *len);
    int (*zerrno)(void);
} zb_api;

/* A frame received and not yet delivered: a zmq_msg_t, and whether it is live. */
typedef struct zb_held {
    uint64_t msg[8];
    int live;
} zb_held;

/* Receive one-frame messages into out[0, cap): their data back to back,
 * their sizes in lens[0, max_count).  Stops at max_count, when libzmq has
 * nothing more (flag ZB_AGAIN), or at a frame that has more frames after
 * it or does not fit in what is left of out: that frame is held (flag
 * ZB_HELD) for the caller to take with zb_held_*, and nothing more is
 * received until it has.  Returns (count << 2) | flags, or -errno when
 * libzmq failed otherwise before anything was received (what was received
 * before an error is returned, and the error comes on the next call). */
int zb_recv(const zb_api *api, void *socket, zb_held *held, uint8_t *out, size_t cap,
            uint32_t *lens, int max_count);

/* The held frame (held->live): its data, its size, whether more follow. */
const void *zb_held_data(const zb_api *api, zb_held *held);
size_t zb_held_size(const zb_api *api, zb_held *held);
int zb_held_more(const zb_api *api, zb_held *held);
/* Let go of the held frame. */
void zb_held_close(const zb_api *api, zb_held *held);

/* Send count one-frame messages whose data lie back to back in data.
 * Returns how many went; *err is 0, or the errno that stopped the rest
 * (EAGAIN: no room). */
int zb_send(const zb_api *api, void *socket, const uint8_t *data, const uint32_t *lens, int count,
            int *err);

/* Send one one-frame message: 0, or the errno that stopped it. */
int zb_send1(const zb_api *api, void *socket, const char *data, size_t len);

/* ZMQ_EVENTS (POLLIN 1, POLLOUT 2), or -errno. */
int zb_events(const zb_api *api, void *socket);

/* CFFI-END */

#endif
