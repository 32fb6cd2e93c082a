/*
 * shm_internal.h: what shmring.c and shmbulk.c share and nobody else sees:
 * the ring header's offsets and the helpers that reach into it.
 *
 * The ring header layout is documented byte by byte in docs/protocol.md;
 * keep the two in step.
 */
#ifndef SHM_INTERNAL_H
#define SHM_INTERNAL_H

#include "shmring.h"

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "the shared formats are little-endian: the C code copies native integers"
#endif

/* Offsets in the ring header.  Each group sits on its own 64-byte line. */
enum {
    OFF_MAGIC = 0,          /* u64, written once at init */
    OFF_VERSION = 8,        /* u32 */
    OFF_HEADER_SIZE = 12,   /* u32 */
    OFF_CAPACITY = 16,      /* u64 */
    OFF_TAIL = 64,          /* u64, producer line */
    OFF_TAIL_SEQ = 72,      /* u64, statistics */
    OFF_BYTES_WRITTEN = 80, /* u64, statistics */
    OFF_PRODUCER_STATE = 88, /* u32, SHM_PRODUCER_* */
    OFF_MSGS_WRITTEN = 96,  /* u64, statistics */
    OFF_BULK_WRITTEN = 104, /* u64, statistics: bytes put in bulk regions */
    OFF_MSGS_DROPPED = 112, /* u64, statistics (a fan-out's misses) */
    OFF_HEAD = 128,         /* u64, consumer line */
    OFF_HEAD_SEQ = 136,     /* u64 */
    OFF_BYTES_READ = 144,   /* u64, statistics */
    OFF_MSGS_READ = 152,    /* u64, statistics */
    OFF_BULK_RELEASED = 160, /* u64: bulk position the consumer has released up to */
    OFF_BULK_READ = 168,    /* u64, statistics: bytes taken from bulk regions */
    OFF_CONSUMER_WAITING = 192, /* u32, waiter line */
    OFF_PRODUCER_WAITING = 196, /* u32 */
    OFF_BULK_WAITING = 200, /* u32: the producer waits for bulk room */
    OFF_BULK_WANT = 208,    /* u64: ... until bulk_released reaches this position */
};

static inline _Atomic uint64_t *at64(uint8_t *ring, size_t off)
{
    return (_Atomic uint64_t *)(void *)(ring + off);
}

static inline _Atomic uint32_t *at32(uint8_t *ring, size_t off)
{
    return (_Atomic uint32_t *)(void *)(ring + off);
}

#endif /* SHM_INTERNAL_H */
