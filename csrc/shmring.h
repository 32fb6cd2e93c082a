/*
 * shmring: a single-producer / single-consumer ring of variable-length
 * records in a memory region that the caller provides.
 *
 * This is the whole C core of shmsock.  It knows nothing about Python,
 * files, processes or waiting: it moves records, validates everything it
 * reads from the shared region, and tells its caller when the other side
 * has asked to be woken up.  The byte layout is documented in
 * docs/protocol.md; keep the two in step.
 *
 * The part between the CFFI markers is read verbatim by the cffi build
 * (shmsock/_ffi_build.py), so it must stay within the C subset that cffi's
 * cdef parser understands: no preprocessor conditionals, no _Atomic, no
 * inline functions.
 */
#ifndef SHMRING_H
#define SHMRING_H

#include <stddef.h>
#include <stdint.h>

/* CFFI-BEGIN */

/* Layout constants (see docs/protocol.md). */
#define SHM_RING_HEADER_SIZE 256  /* bytes of ring header before the data area */
#define SHM_REC_HEADER_SIZE 24    /* bytes of record header */
#define SHM_REC_ALIGN 8           /* records start at multiples of this */
#define SHM_RING_VERSION 3        /* ring header and record format version */
#define SHM_REC_MAGIC 0x5253      /* first two bytes of every record: "SR" */
#define SHM_MIN_CAPACITY 256      /* smallest data area */
#define SHM_MAX_CAPACITY 1073741824 /* largest data area (1 GiB) */

/* Record flags (one byte).  Bits not listed here must be zero. */
#define SHM_F_PAD 1    /* padding up to the end of the data area; no payload */
#define SHM_F_START 2  /* first record of a message */
#define SHM_F_MORE 4   /* another frame of the same message follows this frame */
#define SHM_F_CONT 8   /* this frame continues in the next record */
#define SHM_F_NOCRC 16 /* no checksum: the crc field must be 0 and is not checked */
#define SHM_F_DESC 32  /* the frame lies in a bulk region; the payload is its descriptor */
#define SHM_F_CTRL 64  /* a record of a control message (a subscription), not data */

/* Producer states, in the ring header.  A reader never acts on the state
 * (see docs/protocol.md): it reads a closed producer's records to the end.
 * Earlier builds stored 2 for a close that withdrew the unread records;
 * nothing stores it any more, and readers take it for closed. */
#define SHM_PRODUCER_OPEN 0
#define SHM_PRODUCER_CLOSED 1

/* Return codes.  Non-negative values are successes (see each function). */
#define SHM_AGAIN -1            /* ring empty (read) or full (write): try later */
#define SHM_EINVAL -2           /* bad argument from the caller */
#define SHM_ETOOBIG -3          /* record larger than the ring can ever hold */
#define SHM_ENOBUFS -4          /* caller's output buffer cannot hold the next record */
                                /* -5 was EDISCARDED, which no call returns any more */
#define SHM_ENEWREGION -6       /* descriptor names a newer bulk region: attach it, retry */
#define SHM_EHEADER -10         /* ring header: bad magic, version or geometry */
#define SHM_EPOSITION -11       /* positions inconsistent (backwards, ahead, misaligned) */
#define SHM_EMAGIC -12          /* record magic wrong */
#define SHM_EVERSION -13        /* record version wrong */
#define SHM_EFLAGS -14          /* record flags invalid */
#define SHM_ELENGTH -15         /* record length out of bounds */
#define SHM_ESEQUENCE -16       /* record sequence number not the one expected */
#define SHM_ECRC -17            /* checksum mismatch (payload or header fields) */
#define SHM_EPAD -18            /* padding record malformed */
#define SHM_EEXTENT -19         /* bulk descriptor impossible (region, bounds, order, fields) */
#define SHM_EBULKCRC -20        /* bulk payload fails its checksum */
#define SHM_EREGION -21         /* bulk region header: bad magic, version or geometry */

/*
 * Private state of each side.  These live in process-private memory; the
 * fields copied from the shared region at attach time are validated there
 * and never read back from shared memory afterwards.
 */
typedef struct shm_producer {
    uint8_t *ring;        /* start of the mapped region (ring header) */
    uint8_t *data;        /* start of the data area */
    uint64_t capacity;    /* private copy, power of two */
    uint64_t mask;
    uint64_t tail;        /* next write position (published at end of batch) */
    uint64_t head_cache;  /* last consumer position seen */
    uint64_t seq;         /* sequence number of the next record */
    uint64_t bytes;       /* payload bytes written, for statistics (not CTRL records') */
    uint64_t records;     /* non-padding records written */
    uint64_t msgs;        /* records written that end a message, CTRL not (statistics) */
    uint64_t dropped;     /* messages a fan-out dropped for want of room (statistics) */
    int checksum;         /* 1 (set by attach): records carry CRC32C; 0: NOCRC.
                           * The owner may change it between calls. */
} shm_producer;

typedef struct shm_consumer {
    uint8_t *ring;
    uint8_t *data;
    uint64_t capacity;
    uint64_t mask;
    uint64_t head;        /* next read position (published at end of batch) */
    uint64_t tail_cache;  /* last producer position seen */
    uint64_t seq;         /* sequence number expected next */
    uint64_t bytes;       /* payload bytes read (not CTRL records') */
    uint64_t records;     /* non-padding records read */
    uint64_t msgs;        /* records read that end a message, CTRL not (statistics) */
    int resync;           /* adopt the sequence number of the next record */
} shm_consumer;

/* Read-only snapshot of a ring's shared header, for monitoring tools. */
typedef struct shm_ring_stats {
    uint64_t capacity;
    uint64_t head;
    uint64_t tail;
    uint64_t head_seq;
    uint64_t tail_seq;
    uint64_t bytes_written;
    uint64_t bytes_read;
    uint64_t msgs_written;
    uint64_t msgs_read;
    uint64_t bulk_written;
    uint64_t bulk_read;
    uint64_t bulk_released;
    uint64_t msgs_dropped;
    uint32_t consumer_waiting;
    uint32_t producer_waiting;
    uint32_t producer_state;
    uint32_t bulk_waiting;
} shm_ring_stats;

/* Bytes of region needed for a ring with `capacity` bytes of data area. */
size_t shm_ring_region_size(uint64_t capacity);

/* Largest payload one record can carry in a ring of `capacity` bytes.
 * It is half the data area less a record header, so that a record of that
 * size always fits eventually, whatever the write position. */
uint64_t shm_ring_max_payload(uint64_t capacity);

/* Format `region` as an empty ring.  capacity must be a power of two in
 * [SHM_MIN_CAPACITY, SHM_MAX_CAPACITY]; start_pos must be a multiple of
 * SHM_REC_ALIGN.  Positions are free-running 64-bit counters, so any
 * start value works (tests start near 2^64).  Returns 0 or SHM_EINVAL. */
int shm_ring_init(void *region, size_t region_size, uint64_t capacity,
                  uint64_t start_pos, uint64_t start_seq);

/* Attach private state to a formatted region.  `capacity` is what the
 * caller expects; the header must agree.  Returns 0, SHM_EINVAL,
 * SHM_EHEADER or SHM_EPOSITION. */
int shm_producer_attach(shm_producer *p, void *region, size_t region_size,
                        uint64_t capacity);
/* With resync != 0 the consumer takes the sequence number of the next
 * record as given (used when a new consumer takes over a live ring);
 * otherwise it expects the sequence number recorded in the header. */
int shm_consumer_attach(shm_consumer *c, void *region, size_t region_size,
                        uint64_t capacity, int resync);

/*
 * Write `count` records.  Record i carries lens[i] payload bytes, taken back
 * to back from `data`, which holds `data_len` bytes: lens that add up to
 * more are SHM_EINVAL, and nothing is written.  Record i has flags
 * flags[i] (or SHM_F_START for every record when flags is NULL).  `aux` goes into the aux field of records that carry
 * SHM_F_START, 0 elsewhere.  With p->checksum, each record's crc covers
 * its payload and its flags, len, seq and aux (docs/protocol.md); when it
 * is 0 the records carry SHM_F_NOCRC and crc 0 instead.
 *
 * With atomic != 0 either all records are written or none (SHM_AGAIN).
 * Otherwise as many leading records as fit are written.  With announce,
 * a call that can write nothing announces that the producer waits for
 * the space this call needs (as shm_producer_prepare_wait does; the reader
 * reports the wake only once that much is free)
 * before returning SHM_AGAIN, or writes after all if space appeared.
 *
 * The tail is published once, at the end.  On success returns
 * (written << 1) | wake, where wake is 1 when the consumer had announced
 * that it was going to sleep and must now be signalled.  Returns SHM_AGAIN
 * when not even the first record fits, SHM_ETOOBIG when a record can never
 * fit, SHM_EINVAL on bad flags or lengths, SHM_EPOSITION when the consumer's position
 * in the header is impossible.
 */
int64_t shm_write(shm_producer *p, const uint8_t *data, size_t data_len,
                  const uint32_t *lens, size_t count, const uint8_t *flags,
                  uint32_t aux, int atomic, int announce);

/*
 * Fan-out: write one message into each of `n` rings (a publisher's
 * subscribers), with each record's payload checksum computed once for all
 * of them (a record's crc is crc32c(trailer, crc32c(payload)), and only
 * the trailer differs from ring to ring).  The message is `count` records
 * as for shm_write, and each ring gets all of it or none of it.  With flags
 * NULL each record is a whole one-frame message: a batch of `count`
 * messages (a publisher's send_many), written, dropped and counted as
 * that many.  Every payload is checksummed once (above SHM_FANOUT_FRAMES
 * records, in memory from malloc; without it, once per ring).
 *
 * `mode` is one of:
 *  - SHM_FAN_DROP: each ring that has room gets the message, and each that
 *    has none misses it: its producer's `dropped` count goes up by the
 *    messages it missed (and the ring header's msgs_dropped with it);
 *  - SHM_FAN_ALL: either every ring gets the message or none does: a ring
 *    without room is announced as waiting for that room (its reader
 *    reports the wake once it is free, as with shm_write's announce), and
 *    nothing is written or dropped anywhere;
 *  - SHM_FAN_CHECK: as SHM_FAN_ALL, but nothing is written even when every
 *    ring has room (the first half of an all-or-none write spanning
 *    several calls);
 *  - SHM_FAN_FITS: only the argument checks: 0, or SHM_ETOOBIG when the
 *    message could never be written into some ring (nothing is looked at
 *    or announced; the first half of a dropping write spanning several
 *    calls, so that none of them is refused after another wrote).
 *
 * results[i] says what became of ring i: SHM_FAN_WRITTEN (with
 * SHM_FAN_CHECK: it has room), with
 * SHM_FAN_WAKE added when its consumer must now be signalled; 0 when it had
 * no room; a negative code when its consumer position is impossible
 * (SHM_EPOSITION; that ring is left alone).  Returns the number of rings
 * written, plus SHM_FAN_ANY_WAKE, SHM_FAN_ANY_FULL and SHM_FAN_ANY_ERROR
 * when any result says so (a return value of exactly n: every ring took
 * the message and nobody needs a signal), or SHM_EINVAL (bad arguments,
 * n above SHM_FANOUT_MAX), SHM_ETOOBIG (a record larger than some ring
 * can ever hold), before anything is written.
 */
#define SHM_FAN_DROP 0
#define SHM_FAN_ALL 1
#define SHM_FAN_CHECK 2
#define SHM_FAN_FITS 3
#define SHM_FANOUT_MAX 1048575
#define SHM_FANOUT_FRAMES 64
#define SHM_FAN_WRITTEN 1
#define SHM_FAN_WAKE 2
#define SHM_FAN_ANY_WAKE 0x100000000
#define SHM_FAN_ANY_FULL 0x200000000
#define SHM_FAN_ANY_ERROR 0x400000000
int64_t shm_write_fanout(shm_producer *const *ps, size_t n, const uint8_t *data,
                         size_t data_len, const uint32_t *lens, size_t count,
                         const uint8_t *flags, uint32_t aux, int mode, int8_t *results);

/* The same for a one-frame message with aux 0, with fewer arguments (each
 * costs a call from Python). */
int64_t shm_write_fanout_one(shm_producer *const *ps, size_t n, const uint8_t *data,
                             uint32_t len, int mode, int8_t *results);

/* One record holding a whole one-frame message (SHM_F_START, aux 0): the
 * common case, with the fewest arguments because a call from Python pays
 * for each.  Returns 0 or 1 (wake) on success, or an error as above. */
int shm_write_one(shm_producer *p, const uint8_t *data, uint32_t len);

/* The same with an aux word: a one-frame REQ or REP message, whose aux
 * carries the request id.  Results as for shm_write_one. */
int shm_write_tagged(shm_producer *p, const uint8_t *data, uint32_t len, uint32_t aux);

/*
 * Read up to max_count records into `out` (payloads back to back, at most
 * out_cap bytes), their lengths into lens[], flags into flags[] and aux
 * values into aux[] (flags and aux may be NULL).  Padding is skipped and
 * not reported.  Every record is validated and its payload copied to `out`
 * before its checksum (payload, then the validated header fields) is
 * verified on that private copy.
 *
 * The head is published once, at the end, and the records read before a
 * failure stay read.  On success returns
 * (n << 3) | (uneven << 2) | (mixed << 1) | wake: n records; uneven is 1
 * when their payload lengths are not all the same (0 lets a caller cut
 * the payloads apart without looking at lens[]); mixed is 1 when any
 * record had flags other than SHM_F_START or a non-zero aux; wake is 1
 * when the producer had announced that it was waiting for space and
 * must now be signalled.  Returns
 * SHM_ENOBUFS when the first record does not fit in `out`, or a
 * corruption code when the next record is invalid.  An empty ring gives n 0,
 * whether or not its producer has closed: what a closed producer published
 * is read like any other record.
 * After a corruption code the consumer does not advance past the bad
 * record: every further call returns the same code.
 */
int64_t shm_read(shm_consumer *c, uint8_t *out, size_t out_cap,
                 uint32_t *lens, uint8_t *flags, uint32_t *aux,
                 size_t max_count);

/* Bytes readable now (0 when empty); refreshes the cached tail.  Returns
 * SHM_EPOSITION when the producer's position is impossible. */
int64_t shm_consumer_available(shm_consumer *c);

/*
 * The waiter-flag protocol.  A side that finds nothing to do announces that
 * it is about to sleep, then must re-check: these functions do both.
 *
 * shm_consumer_prepare_wait returns 0 when the caller may sleep (the flag
 * stays set and the producer will report wake on its next publish), 1 when
 * data arrived meanwhile (the flag is cleared; do not sleep), or
 * SHM_EPOSITION.  shm_producer_prepare_wait does the same for a producer
 * that needs `need` bytes of payload space; the consumer reports its wake
 * once the room that takes is free, not at every read.
 */
int shm_consumer_prepare_wait(shm_consumer *c);
void shm_consumer_cancel_wait(shm_consumer *c);
int shm_producer_prepare_wait(shm_producer *p, uint32_t need);
void shm_producer_cancel_wait(shm_producer *p);

/* Whether the consumer has announced that it sleeps (its waiter flag), as
 * the producer sees it now: 1 or 0.  A state, not a decision: a caller
 * that waits for the consumer to answer uses it to tell a peer at work from
 * a parked one.  Read from shared memory without validation, so it is a
 * hint: any value other than 0 reads as 1. */
int shm_producer_peer_waiting(const shm_producer *p);

/* Mark the ring closed by its producer, for monitoring tools.  The records
 * it published stay readable: a producer never takes back what it wrote. */
void shm_producer_close(shm_producer *p);

/* For a producer waiting for the consumer to read everything (a lingering
 * close): returns 1 when the ring is empty (the flag is cleared), 0 when
 * the caller may sleep until the consumer reports "wake", or an error. */
int shm_producer_prepare_drain(shm_producer *p);

/* Bytes written and not yet consumed, after reloading the consumer's
 * position (never above capacity), or SHM_EPOSITION. */
int64_t shm_producer_unread(shm_producer *p);

/* Could a record of `len` payload bytes be written now?  1, 0, or an error. */
/* Count `msgs` messages a publisher dropped for want of room in p's ring
 * outside of shm_write_fanout (a large frame whose bulk region was full),
 * in p's `dropped` and the ring header's msgs_dropped, as the fan-out does. */
void shm_producer_count_dropped(shm_producer *p, uint64_t msgs);
int shm_producer_can_write(shm_producer *p, uint32_t len);

/* Copy the shared header's counters for monitoring.  Values are read from
 * shared memory without validation: display them, never trust them. */
int shm_ring_stats_read(const void *region, size_t region_size,
                        shm_ring_stats *out);

/*
 * Bulk regions (docs/protocol.md, "Bulk regions").
 *
 * A frame too large for a ring record travels as one DESC record whose
 * payload is a descriptor naming an extent of a bulk region: a second
 * shared area, written only by the ring's producer, that holds frames
 * back to back as a FIFO byte ring.  The ring's header keeps the control
 * words (bulk_released on the consumer's line; bulk_waiting and bulk_want
 * on the waiter line), so the region itself has one writer and its
 * readers may map it read-only.
 *
 * Positions in a region are free-running 64-bit counters like the ring's;
 * an extent lies at offset `pos & (capacity - 1)` of the region's data
 * area and never wraps: when it would, it starts at offset 0 instead.
 * Extents are at most capacity / 2 bytes, so one always fits eventually.
 * A new (larger) region continues the positions of the one it replaces,
 * from the next multiple of its capacity.
 */
#define SHM_DESC_SIZE 32           /* bytes of a DESC record's payload */
#define SHM_DESC_CRC 1             /* descriptor flag: crc is the payload's CRC32C */
#define SHM_BULK_HEADER_SIZE 4096  /* region header; the data area follows */
#define SHM_BULK_ALIGN 64          /* extents start at multiples of this */
#define SHM_BULK_VERSION 1         /* region header format */
#define SHM_BULK_MIN_CAPACITY 4096
#define SHM_BULK_MAX_CAPACITY 2199023255552 /* 2^41 bytes */

/* The writer's private state for one region. */
typedef struct shm_bulk_writer {
    uint8_t *ring;            /* header of the ring the descriptors travel on */
    uint8_t *data;            /* the region's data area */
    uint64_t capacity;        /* private copy, power of two */
    uint64_t mask;
    uint64_t base;            /* first position of this region */
    uint64_t tail;            /* next free position; private until published */
    uint64_t released_cache;  /* last bulk_released seen */
    uint64_t bytes;           /* bytes put, for statistics */
    uint32_t gen;             /* the region's generation */
} shm_bulk_writer;

/* The reader's private state for one region. */
typedef struct shm_bulk_reader {
    uint8_t *ring;
    uint64_t capacity;
    uint64_t mask;
    uint64_t base;            /* position of the first extent accepted here */
    uint64_t expect;          /* end of the last extent accepted */
    uint64_t released;        /* bulk_released as last published */
    uint64_t bytes;           /* bytes accepted, for statistics */
    uint32_t gen;
    uint32_t want_gen;        /* with SHM_ENEWREGION: the generation named */
    int fresh;                /* no extent accepted in this region yet */
    int resync;               /* adopt the position of the next extent */
    /* The last extent accepted: */
    uint64_t pos;
    uint64_t offset;          /* from the start of the mapping (header included) */
    uint64_t len;
    uint32_t crc;
    uint32_t checked;         /* 1: crc is to be verified */
} shm_bulk_reader;

/* Bytes of a region with `capacity` data bytes, or 0 if capacity is not
 * a power of two in [SHM_BULK_MIN_CAPACITY, SHM_BULK_MAX_CAPACITY]. */
uint64_t shm_bulk_region_size(uint64_t capacity);

/* Format the header of a new region (the writer, before passing it on).
 * Returns 0 or SHM_EINVAL. */
int shm_bulk_init(void *region, size_t size, uint64_t capacity, uint32_t gen, uint32_t pid);

/* Check a private copy of a region's header (at least 64 bytes) against
 * the size of the file it came from and the largest capacity the caller
 * accepts.  On success stores the capacity and generation and returns 0;
 * otherwise SHM_EREGION (or SHM_EINVAL for bad arguments). */
int shm_bulk_check(const void *header, size_t header_len, uint64_t file_size,
                   uint64_t max_capacity, uint64_t *capacity, uint32_t *gen);

/* Attach a writer to a region it formatted, for the producer `p` of the
 * ring its descriptors travel on.  With `prev` (the writer of the region
 * this one replaces) positions continue from prev's tail; without, from
 * the ring's bulk_released word.  Returns 0, SHM_EINVAL or SHM_EREGION. */
int shm_bulk_writer_attach(shm_bulk_writer *w, const shm_producer *p, void *region,
                           size_t size, uint64_t capacity, const shm_bulk_writer *prev);

/* Allocate an extent of `len` bytes at the private tail and write its
 * descriptor (crc 0, no flags) to desc[SHM_DESC_SIZE].  Nothing is
 * visible to the reader until the descriptor is published in the ring;
 * shm_bulk_rewind undoes allocations that never will be.  Returns the
 * extent's offset from the start of the mapping, SHM_AGAIN (no room now),
 * SHM_ETOOBIG (len > capacity / 2), SHM_EINVAL (len 0) or SHM_EPOSITION
 * (the consumer's bulk_released is impossible). */
int64_t shm_bulk_alloc(shm_bulk_writer *w, uint64_t len, uint8_t *desc);

/* shm_bulk_alloc, then copy `len` bytes from `src` into the extent and,
 * with checksum, store their CRC32C (computed on `src`) in the descriptor. */
int64_t shm_bulk_put(shm_bulk_writer *w, const uint8_t *src, uint64_t len, int checksum,
                     uint8_t *desc);

/* shm_bulk_put without a checksum pass: the extent carries `crc`, the CRC32C
 * the caller computed over the same `src` (a publisher's frame copied into
 * several subscribers' regions, checksummed once by the first shm_bulk_put).
 * A plain memcpy, which moves large frames faster than the checksumming
 * copy. */
int64_t shm_bulk_put_sum(shm_bulk_writer *w, const uint8_t *src, uint64_t len, uint32_t crc,
                         uint8_t *desc);

/* For an extent filled in place (a loan): with checksum, compute the CRC32C
 * of the extent that `desc` (from shm_bulk_alloc) names and store it there.
 * Returns 0, or SHM_EINVAL when desc names no extent allocated here. */
int shm_bulk_seal(shm_bulk_writer *w, uint8_t *desc, int checksum);

/* Undo the allocations made since the tail was `tail` (a value of w->tail
 * read before them).  Returns 0 or SHM_EINVAL. */
int shm_bulk_rewind(shm_bulk_writer *w, uint64_t tail);

/* The waiter-flag protocol for room in the region: announce that an
 * extent of `len` bytes is wanted, then re-check.  1: there is room (the
 * announcement is withdrawn); 0: sleep until the consumer reports "wake";
 * or SHM_ETOOBIG, SHM_EINVAL, SHM_EPOSITION. */
int shm_bulk_prepare_wait(shm_bulk_writer *w, uint64_t len);
void shm_bulk_cancel_wait(shm_bulk_writer *w);

/* Bytes allocated and not yet released by the consumer (skips included),
 * after reloading bulk_released, or SHM_EPOSITION. */
int64_t shm_bulk_unreleased(shm_bulk_writer *w);

/* Attach a reader to a region whose header passed shm_bulk_check, for the
 * consumer `c` of the ring the descriptors come on.  With `prev` (the
 * reader of the region this one replaces; gen must be newer) the release
 * accounting carries on; without, it starts from the ring's bulk_released
 * word, and with resync the first extent's position is adopted as found
 * (a reader taking over a live ring).  Returns 0 or SHM_EINVAL. */
int shm_bulk_reader_attach(shm_bulk_reader *r, const shm_consumer *c, uint64_t capacity,
                           uint32_t gen, const shm_bulk_reader *prev, int resync);

/* Validate a descriptor (a private copy of a DESC record's payload)
 * against the reader's private state: its generation, its length, the
 * position the next extent must have, the bounds of the region and the
 * extents not yet released.  On success stores the extent in r->pos,
 * offset, len, crc and checked, and returns 0.  Returns SHM_ENEWREGION
 * (r->want_gen set) when it names a newer region, else SHM_EEXTENT; a
 * refused descriptor changes nothing. */
int shm_bulk_accept(shm_bulk_reader *r, const uint8_t *desc);

/* Verify an accepted extent's checksum (its len, crc and checked, as
 * shm_bulk_accept stored them) on `copy`: its bytes copied out of the
 * region, or the region itself for an advisory check.  Returns 0 (also
 * when checked is 0) or SHM_EBULKCRC. */
int shm_bulk_verify(const uint8_t *copy, uint64_t len, uint32_t crc, uint32_t checked);

/* Copy an accepted extent out of the region (`src`, `len` bytes) into the
 * private `dst` and verify its checksum on the copy, as shm_bulk_verify
 * does, in one pass: each word is checksummed from the register it is
 * copied through (shm_crc32c_copy; above 2 MiB shm_crc32c_copy_stream), so
 * the frame is read once from memory.
 * Returns 0 or SHM_EBULKCRC (dst then holds the copy, which is not to be
 * used). */
int shm_bulk_copy_verify(uint8_t *dst, const uint8_t *src, uint64_t len, uint32_t crc,
                         uint32_t checked);

/* Publish that every extent before position `pos` is released, and report
 * whether the producer waits for that room (1: signal it).  `pos` must lie
 * between the last published position and the end of the last extent
 * accepted: SHM_EINVAL otherwise. */
int shm_bulk_release(shm_bulk_reader *r, uint64_t pos);

/* CRC32C (Castagnoli) of `len` bytes, continuing from `crc` (0 to start).
 * Uses the SSE4.2 instruction when the CPU has it. */
uint32_t shm_crc32c(uint32_t crc, const uint8_t *buf, size_t len);

/* memcpy(dst, src, len), returning the CRC32C of the bytes copied (as
 * shm_crc32c(crc, dst, len) would after the copy), each byte read once.
 * The regions must not overlap. */
uint32_t shm_crc32c_copy(uint32_t crc, uint8_t *dst, const uint8_t *src, size_t len);

/* shm_crc32c_copy whose stores to dst are non-temporal (they bypass the
 * caches): for copies far larger than the L2 cache, whose destination
 * nobody on this core reads next.  Where it streams (SSE4.2 CPUs;
 * elsewhere it is shm_crc32c_copy) it ends with a store fence, so the copy
 * is ordered before any later release store. */
uint32_t shm_crc32c_copy_stream(uint32_t crc, uint8_t *dst, const uint8_t *src, size_t len);

/* CFFI-END */

#endif /* SHMRING_H */
