/* zmqbatch: see zmqbatch.h. */
#include "zmqbatch.h"

#include <errno.h>
#include <string.h>

/* libzmq's values (zmq.h), stable since 3.x. */
#define ZB_DONTWAIT 1
#define ZB_EVENTS 15

int zb_recv(const zb_api *api, void *socket, zb_held *held, uint8_t *out, size_t cap,
            uint32_t *lens, int max_count)
{
    if (held->live)
        return ZB_HELD;
    void *msg = held->msg;
    size_t pos = 0;
    int n = 0;
    while (n < max_count) {
        api->msg_init(msg);
        if (api->msg_recv(msg, socket, ZB_DONTWAIT) < 0) {
            int err = api->zerrno();
            api->msg_close(msg);
            if (err == EAGAIN)
                return (n << 2) | ZB_AGAIN;
            return n ? n << 2 : -err;
        }
        size_t size = api->msg_size(msg);
        if (api->msg_more(msg) || size > cap - pos || size > UINT32_MAX) {
            held->live = 1;
            return (n << 2) | ZB_HELD;
        }
        memcpy(out + pos, api->msg_data(msg), size);
        api->msg_close(msg);
        lens[n++] = (uint32_t)size;
        pos += size;
    }
    return n << 2;
}

const void *zb_held_data(const zb_api *api, zb_held *held)
{
    return held->live ? api->msg_data(held->msg) : NULL;
}

size_t zb_held_size(const zb_api *api, zb_held *held)
{
    return held->live ? api->msg_size(held->msg) : 0;
}

int zb_held_more(const zb_api *api, zb_held *held)
{
    return held->live ? api->msg_more(held->msg) : 0;
}

void zb_held_close(const zb_api *api, zb_held *held)
{
    if (held->live) {
        api->msg_close(held->msg);
        held->live = 0;
    }
}

int zb_send(const zb_api *api, void *socket, const uint8_t *data, const uint32_t *lens, int count,
            int *err)
{
    size_t pos = 0;
    for (int i = 0; i < count; i++) {
        if (api->send(socket, data + pos, lens[i], ZB_DONTWAIT) < 0) {
            *err = api->zerrno();
            return i;
        }
        pos += lens[i];
    }
    *err = 0;
    return count;
}

int zb_send1(const zb_api *api, void *socket, const char *data, size_t len)
{
    return api->send(socket, data, len, ZB_DONTWAIT) < 0 ? api->zerrno() : 0;
}

int zb_events(const zb_api *api, void *socket)
{
    int events = 0;
    size_t len = sizeof events;
    if (api->getsockopt(socket, ZB_EVENTS, &events, &len) < 0)
        return -api->zerrno();
    return events;
}
