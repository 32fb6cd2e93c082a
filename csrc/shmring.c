/*
 * shmring.c: the SPSC record ring.  See shmring.h for the contract and
 * docs/protocol.md for the byte layout.
 *
 * Rules this file keeps:
 *
 *  1. Everything in the shared region is hostile.  Positions and record
 *     headers are copied into locals, validated against private state (the
 *     capacity fixed at attach time, our own position, the sequence number
 *     we expect), and only then used.  Payloads are copied out first and
 *     checksummed on the private copy, so the producer cannot change them
 *     between check and use.
 *  2. No loop runs longer than the data it has validated: a read call
 *     advances at most `capacity` bytes and `max_count` records.
 *  3. Each side writes only its own cache line of positions.  The producer
 *     publishes `tail` with a release store after the records are written;
 *     the consumer observes it with an acquire load before reading them.
 *     The same holds for `head` in the other direction, which tells the
 *     producer that space can be reused.
 *  4. Each side keeps a private copy of the other side's position and
 *     reloads it only when the ring looks empty (consumer) or full
 *     (producer), so the hot path touches no contended cache line.
 *  5. No waiting policy: when the ring is empty or full we return and let
 *     the caller decide whether to spin, park, or give up.
 */
#include "shm_internal.h"

#include <stdlib.h>
#include <string.h>

#define RING_MAGIC 0x31474e49524d4853ull /* "SHMRING1" little-endian */
#define KNOWN_FLAGS \
    (SHM_F_PAD | SHM_F_START | SHM_F_MORE | SHM_F_CONT | SHM_F_NOCRC | SHM_F_DESC | \
     SHM_F_CTRL)

_Static_assert(SHM_RING_HEADER_SIZE == 256, "header is four cache lines");
_Static_assert(SHM_REC_HEADER_SIZE == 24, "the canonical record header is 24 bytes");

/* The record header as it sits in the ring (little-endian, x86-64). */
typedef struct rec_header {
    uint16_t magic;
    uint8_t version;
    uint8_t flags;
    uint32_t len;
    uint64_t seq;
    uint32_t crc;
    uint32_t aux;
} rec_header;
_Static_assert(sizeof(rec_header) == SHM_REC_HEADER_SIZE, "no padding in the record header");

/* Bytes of header fields the checksum covers after the payload. */
#define REC_CRC_TRAILER 17

/*
 * The checksum of a record: CRC32C of the payload, continued over the
 * header fields a reader acts on, as the little-endian trailer
 *     flags (1) | len (4) | seq (8) | aux (4).
 * A checksum of the payload alone let one flipped bit in the header turn
 * a frame's MORE off (a message delivered short), or change aux (a reply
 * matched to the wrong request), with every check passing.  magic and
 * version need no cover: a reader accepts only their one exact value.
 * Writer and reader both go through here, so they cannot disagree.
 */
static inline uint32_t rec_crc_from(uint32_t payload_crc, uint32_t len, uint8_t flags,
                                    uint64_t seq, uint32_t aux)
{
    uint8_t t[REC_CRC_TRAILER];
    t[0] = flags;
    memcpy(t + 1, &len, 4);
    memcpy(t + 5, &seq, 8);
    memcpy(t + 13, &aux, 4);
    return shm_crc32c(payload_crc, t, sizeof t);
}

static inline uint64_t rec_size(uint64_t len)
{
    return (len + SHM_REC_HEADER_SIZE + (SHM_REC_ALIGN - 1)) & ~(uint64_t)(SHM_REC_ALIGN - 1);
}

static inline bool valid_capacity(uint64_t capacity)
{
    return capacity >= SHM_MIN_CAPACITY && capacity <= SHM_MAX_CAPACITY &&
           (capacity & (capacity - 1)) == 0;
}

size_t shm_ring_region_size(uint64_t capacity)
{
    if (!valid_capacity(capacity))
        return 0;
    return (size_t)(SHM_RING_HEADER_SIZE + capacity);
}

uint64_t shm_ring_max_payload(uint64_t capacity)
{
    if (!valid_capacity(capacity))
        return 0;
    return capacity / 2 - SHM_REC_HEADER_SIZE;
}

int shm_ring_init(void *region, size_t region_size, uint64_t capacity,
                  uint64_t start_pos, uint64_t start_seq)
{
    uint8_t *ring = region;
    if (!ring || !valid_capacity(capacity) ||
        region_size < SHM_RING_HEADER_SIZE + capacity ||
        (start_pos & (SHM_REC_ALIGN - 1)) != 0)
        return SHM_EINVAL;
    memset(ring, 0, SHM_RING_HEADER_SIZE);
    uint64_t magic = RING_MAGIC;
    uint32_t version = SHM_RING_VERSION, hsize = SHM_RING_HEADER_SIZE;
    memcpy(ring + OFF_MAGIC, &magic, 8);
    memcpy(ring + OFF_VERSION, &version, 4);
    memcpy(ring + OFF_HEADER_SIZE, &hsize, 4);
    memcpy(ring + OFF_CAPACITY, &capacity, 8);
    atomic_store_explicit(at64(ring, OFF_HEAD), start_pos, memory_order_relaxed);
    atomic_store_explicit(at64(ring, OFF_HEAD_SEQ), start_seq, memory_order_relaxed);
    atomic_store_explicit(at64(ring, OFF_TAIL_SEQ), start_seq, memory_order_relaxed);
    /* Bulk positions start where the ring's do (any value works). */
    atomic_store_explicit(at64(ring, OFF_BULK_RELEASED), start_pos, memory_order_relaxed);
    /* Release: whoever sees this tail also sees the header above. */
    atomic_store_explicit(at64(ring, OFF_TAIL), start_pos, memory_order_release);
    return 0;
}

/* Checks the immutable part of the header against what the caller expects. */
static int check_header(uint8_t *ring, size_t region_size, uint64_t capacity)
{
    if (!ring || !valid_capacity(capacity) || region_size < SHM_RING_HEADER_SIZE + capacity)
        return SHM_EINVAL;
    uint64_t magic, cap;
    uint32_t version, hsize;
    memcpy(&magic, ring + OFF_MAGIC, 8);
    memcpy(&version, ring + OFF_VERSION, 4);
    memcpy(&hsize, ring + OFF_HEADER_SIZE, 4);
    memcpy(&cap, ring + OFF_CAPACITY, 8);
    if (magic != RING_MAGIC || version != SHM_RING_VERSION ||
        hsize != SHM_RING_HEADER_SIZE || cap != capacity)
        return SHM_EHEADER;
    return 0;
}

/* A pair of positions is possible when the ring holds between 0 and
 * capacity bytes and both sit on record alignment. */
static inline bool positions_ok(uint64_t head, uint64_t tail, uint64_t capacity)
{
    return tail - head <= capacity && ((head | tail) & (SHM_REC_ALIGN - 1)) == 0;
}

int shm_producer_attach(shm_producer *p, void *region, size_t region_size, uint64_t capacity)
{
    if (!p)
        return SHM_EINVAL;
    memset(p, 0, sizeof *p);
    uint8_t *ring = region;
    int rc = check_header(ring, region_size, capacity);
    if (rc)
        return rc;
    uint64_t tail = atomic_load_explicit(at64(ring, OFF_TAIL), memory_order_acquire);
    uint64_t head = atomic_load_explicit(at64(ring, OFF_HEAD), memory_order_acquire);
    if (!positions_ok(head, tail, capacity))
        return SHM_EPOSITION;
    p->ring = ring;
    p->data = ring + SHM_RING_HEADER_SIZE;
    p->capacity = capacity;
    p->mask = capacity - 1;
    p->tail = tail;
    p->head_cache = head;
    p->seq = atomic_load_explicit(at64(ring, OFF_TAIL_SEQ), memory_order_relaxed);
    p->bytes = atomic_load_explicit(at64(ring, OFF_BYTES_WRITTEN), memory_order_relaxed);
    p->msgs = atomic_load_explicit(at64(ring, OFF_MSGS_WRITTEN), memory_order_relaxed);
    p->dropped = atomic_load_explicit(at64(ring, OFF_MSGS_DROPPED), memory_order_relaxed);
    p->checksum = 1;
    return 0;
}

int shm_consumer_attach(shm_consumer *c, void *region, size_t region_size,
                        uint64_t capacity, int resync)
{
    if (!c)
        return SHM_EINVAL;
    memset(c, 0, sizeof *c);
    uint8_t *ring = region;
    int rc = check_header(ring, region_size, capacity);
    if (rc)
        return rc;
    uint64_t head = atomic_load_explicit(at64(ring, OFF_HEAD), memory_order_acquire);
    uint64_t tail = atomic_load_explicit(at64(ring, OFF_TAIL), memory_order_acquire);
    if (!positions_ok(head, tail, capacity))
        return SHM_EPOSITION;
    c->ring = ring;
    c->data = ring + SHM_RING_HEADER_SIZE;
    c->capacity = capacity;
    c->mask = capacity - 1;
    c->head = head;
    c->tail_cache = tail;
    c->seq = atomic_load_explicit(at64(ring, OFF_HEAD_SEQ), memory_order_relaxed);
    c->bytes = atomic_load_explicit(at64(ring, OFF_BYTES_READ), memory_order_relaxed);
    c->msgs = atomic_load_explicit(at64(ring, OFF_MSGS_READ), memory_order_relaxed);
    c->resync = resync != 0;
    return 0;
}

/* ---------------------------------------------------------------- producer */

/* Bytes a record of `size` bytes takes when written at `pos`, padding
 * included. */
static inline uint64_t space_needed(const shm_producer *p, uint64_t pos, uint64_t size)
{
    uint64_t contig = p->capacity - (pos & p->mask);
    return size <= contig ? size : contig + size;
}

/* Reloads the consumer position.  It may only have moved forward, and not
 * past what we have published. */
static inline int reload_head(shm_producer *p)
{
    uint64_t head = atomic_load_explicit(at64(p->ring, OFF_HEAD), memory_order_acquire);
    if (head - p->head_cache > p->tail - p->head_cache || (head & (SHM_REC_ALIGN - 1)))
        return SHM_EPOSITION;
    p->head_cache = head;
    return 0;
}

/* Is there room for `need` more bytes after position `pos`? */
static inline int has_room(shm_producer *p, uint64_t pos, uint64_t need)
{
    if (need <= p->capacity - (pos - p->head_cache))
        return 1;
    int rc = reload_head(p);
    if (rc)
        return rc;
    return need <= p->capacity - (pos - p->head_cache);
}

static inline void put_header(uint8_t *dst, uint8_t flags, uint32_t len, uint64_t seq,
                              uint32_t crc, uint32_t aux)
{
    rec_header h = {SHM_REC_MAGIC, SHM_RING_VERSION, flags, len, seq, crc, aux};
    memcpy(dst, &h, sizeof h);
}

/* Writes one record at `pos` (room already checked) and returns the new
 * position.  `payload_crc` is the payload's CRC32C when the caller has it
 * already (a fan-out), or -1. */
static inline uint64_t put_record_crc(shm_producer *p, uint64_t pos, const uint8_t *src,
                                      uint32_t len, uint8_t flags, uint32_t aux,
                                      int64_t payload_crc)
{
    uint64_t size = rec_size(len);
    uint64_t off = pos & p->mask;
    uint64_t contig = p->capacity - off;
    if (size > contig) {
        /* Wrap.  When fewer bytes than a header remain, both sides skip
         * them without a marker. */
        if (contig >= SHM_REC_HEADER_SIZE)
            put_header(p->data + off, SHM_F_PAD, (uint32_t)(contig - SHM_REC_HEADER_SIZE),
                       p->seq, 0, 0);
        pos += contig;
        off = 0;
    }
    uint32_t crc = 0;
    uint8_t *dst = p->data + off + SHM_REC_HEADER_SIZE;
    if (!(flags & SHM_F_START))
        aux = 0;
    if (!p->checksum) {
        flags |= SHM_F_NOCRC;
        if (len)
            memcpy(dst, src, len);
    } else {
        /* The payload is copied and checksummed in one pass (the CRC is of
         * the bytes read from src, the caller's private source). */
        if (payload_crc < 0)
            payload_crc = shm_crc32c_copy(0, dst, src, len);
        else if (len)
            memcpy(dst, src, len);
        crc = rec_crc_from((uint32_t)payload_crc, len, flags, p->seq, aux);
    }
    put_header(p->data + off, flags, len, p->seq, crc, aux);
    p->seq++;
    /* Statistics count data: a control record (a subscription) is neither
       payload nor a message.  A record without MORE or CONT is the last of
       its message. */
    p->bytes += (flags & SHM_F_CTRL) ? 0 : len;
    p->records++;
    p->msgs += !(flags & (SHM_F_MORE | SHM_F_CONT | SHM_F_CTRL));
    return pos + size;
}

static inline uint64_t put_record(shm_producer *p, uint64_t pos, const uint8_t *src,
                                  uint32_t len, uint8_t flags, uint32_t aux)
{
    return put_record_crc(p, pos, src, len, flags, aux, -1);
}

/*
 * Publishes `pos` and reports whether the consumer must be woken.
 *
 * Why no wake-up is lost: the consumer announces with
 *     store(consumer_waiting, 1); fence(seq_cst); load(tail)
 * and we publish with
 *     store(tail, pos); fence(seq_cst); load(consumer_waiting).
 * The two seq_cst fences are totally ordered.  If ours comes first, the
 * consumer's load of tail after its fence sees our store and it does not
 * sleep.  If the consumer's comes first, our load of the flag sees 1 and we
 * wake it.  Either way a sleeping consumer with data behind it cannot
 * happen.  The exchange makes exactly one publisher report the wake for
 * each announcement.
 */
static inline int publish_tail(shm_producer *p, uint64_t pos)
{
    atomic_store_explicit(at64(p->ring, OFF_TAIL), pos, memory_order_release);
    atomic_store_explicit(at64(p->ring, OFF_TAIL_SEQ), p->seq, memory_order_relaxed);
    atomic_store_explicit(at64(p->ring, OFF_BYTES_WRITTEN), p->bytes, memory_order_relaxed);
    atomic_store_explicit(at64(p->ring, OFF_MSGS_WRITTEN), p->msgs, memory_order_relaxed);
    p->tail = pos;
    atomic_thread_fence(memory_order_seq_cst);
    _Atomic uint32_t *w = at32(p->ring, OFF_CONSUMER_WAITING);
    if (atomic_load_explicit(w, memory_order_relaxed) == 0)
        return 0;
    return atomic_exchange_explicit(w, 0, memory_order_relaxed) != 0;
}

/* A DESC record is a whole frame whose payload is one descriptor. */
static inline int valid_write_flags(uint8_t flags, uint32_t len)
{
    if (flags & SHM_F_DESC)
        return !(flags & (SHM_F_CONT | SHM_F_CTRL)) && len == SHM_DESC_SIZE;
    return (flags & ~(SHM_F_START | SHM_F_MORE | SHM_F_CONT | SHM_F_CTRL)) == 0;
}

/* Announce that we wait for `need` bytes at the tail, then re-check; returns
 * 1 if they are there after all (announcement withdrawn), 0, or an error. */
static int announce_need(shm_producer *p, uint64_t need)
{
    _Atomic uint32_t *w = at32(p->ring, OFF_PRODUCER_WAITING);
    /* The announcement is the room we need (docs/protocol.md): the
     * consumer wakes us once that much is free, not at every read.
     * capacity <= 1 GiB, so it fits in 32 bits; 0 would mean "not waiting". */
    atomic_store_explicit(w, need ? (uint32_t)need : 1u, memory_order_relaxed);
    /* Store-load barrier: the mirror image of publish_head's fence. */
    atomic_thread_fence(memory_order_seq_cst);
    int rc = reload_head(p);
    if (rc)
        return rc;
    if (need <= p->capacity - (p->tail - p->head_cache)) {
        atomic_store_explicit(w, 0, memory_order_relaxed);
        return 1;
    }
    return 0;
}

int64_t shm_write(shm_producer *p, const uint8_t *data, size_t data_len,
                  const uint32_t *lens, size_t count, const uint8_t *flags, uint32_t aux,
                  int atomic, int announce)
{
    if (!p || !p->ring || (count && (!lens || !data)))
        return SHM_EINVAL;
    uint64_t max_payload = p->capacity / 2 - SHM_REC_HEADER_SIZE;
    /* The payloads are copied from data: lens that add up to more than the
     * caller's buffer would copy whatever lies beyond it into the ring. */
    uint64_t total = 0;
    for (size_t i = 0; i < count; i++) {
        if (lens[i] > max_payload)
            return SHM_ETOOBIG;
        if (flags && !valid_write_flags(flags[i], lens[i]))
            return SHM_EINVAL;
        total += lens[i];
    }
    if (total > data_len)
        return SHM_EINVAL;
    if (atomic && count) {
        uint64_t end = p->tail;
        for (size_t i = 0; i < count; i++)
            end += space_needed(p, end, rec_size(lens[i]));
        if (end - p->tail > p->capacity)
            return SHM_ETOOBIG;
        int room = has_room(p, p->tail, end - p->tail);
        if (room == 0 && announce)
            room = announce_need(p, end - p->tail);
        if (room <= 0)
            return room ? room : SHM_AGAIN;
    }
    uint64_t pos = p->tail;
    const uint8_t *src = data;
    size_t n = 0;
    for (; n < count; n++) {
        if (!atomic) {
            uint64_t need = space_needed(p, pos, rec_size(lens[n]));
            int room = has_room(p, pos, need);
            if (room == 0 && announce && n == 0)
                room = announce_need(p, need);
            if (room < 0)
                return room;
            if (!room)
                break;
        }
        pos = put_record(p, pos, src, lens[n], flags ? flags[n] : SHM_F_START, aux);
        src += lens[n];
    }
    if (n == 0)
        return count ? SHM_AGAIN : 0;
    int wake = publish_tail(p, pos);
    return ((int64_t)n << 1) | wake;
}

/* ------------------------------------------------------------------ fan-out */

/* Counts the `msgs` messages a fan-out could not write into p's ring. */
static inline void count_dropped(shm_producer *p, uint64_t msgs)
{
    p->dropped += msgs;
    atomic_store_explicit(at64(p->ring, OFF_MSGS_DROPPED), p->dropped, memory_order_relaxed);
}

/* The ring space the message takes at p's tail, padding included, or 0 when
 * one of its records can never fit p's ring. */
static uint64_t message_span(const shm_producer *p, const uint32_t *lens, size_t count)
{
    uint64_t max_payload = p->capacity / 2 - SHM_REC_HEADER_SIZE;
    uint64_t end = p->tail;
    for (size_t i = 0; i < count; i++) {
        if (lens[i] > max_payload)
            return 0;
        end += space_needed(p, end, rec_size(lens[i]));
    }
    if (end - p->tail > p->capacity)
        return 0;
    return end - p->tail;
}

int64_t shm_write_fanout(shm_producer *const *ps, size_t n, const uint8_t *data,
                         size_t data_len, const uint32_t *lens, size_t count,
                         const uint8_t *flags, uint32_t aux, int mode, int8_t *results)
{
    if (!ps || !results || n > SHM_FANOUT_MAX || !count || !lens || !data ||
        (mode != SHM_FAN_DROP && mode != SHM_FAN_ALL && mode != SHM_FAN_CHECK &&
         mode != SHM_FAN_FITS))
        return SHM_EINVAL;
    int all = mode != SHM_FAN_DROP;
    uint64_t total = 0, msgs = flags ? 0 : count;
    for (size_t j = 0; j < count; j++) {
        /* A descriptor names one ring's bulk region: it cannot fan out. */
        if (flags && (!valid_write_flags(flags[j], lens[j]) || (flags[j] & SHM_F_DESC)))
            return SHM_EINVAL;
        if (flags && !(flags[j] & (SHM_F_MORE | SHM_F_CONT | SHM_F_CTRL)))
            msgs++;
        total += lens[j];
    }
    if (total > data_len)
        return SHM_EINVAL;
    for (size_t i = 0; i < n; i++) {
        if (!ps[i] || !ps[i]->ring)
            return SHM_EINVAL;
        if (!message_span(ps[i], lens, count))
            return SHM_ETOOBIG;
    }
    if (mode == SHM_FAN_FITS)
        return 0;
    /* The payloads' checksums, once for every ring (a batch of many
     * messages keeps them on the heap; without memory, per ring). */
    uint32_t stack_crcs[SHM_FANOUT_FRAMES];
    uint32_t *crcs = stack_crcs;
    if (count > SHM_FANOUT_FRAMES && n > 1)
        crcs = malloc(count * sizeof *crcs);
    int have_crcs = crcs && (count <= SHM_FANOUT_FRAMES || n > 1);
    if (have_crcs) {
        const uint8_t *src = data;
        for (size_t j = 0; j < count; j++) {
            crcs[j] = shm_crc32c(0, src, lens[j]);
            src += lens[j];
        }
    }
    int64_t any_full = 0, any_error = 0, any_wake = 0, written = 0;
    /* First pass: which rings have room (all: announced when they have not). */
    for (size_t i = 0; i < n; i++) {
        shm_producer *p = ps[i];
        uint64_t need = message_span(p, lens, count);
        int room = has_room(p, p->tail, need);
        if (room == 0 && all)
            room = announce_need(p, need);
        if (room < 0) {
            results[i] = (int8_t)room;
            any_error = SHM_FAN_ANY_ERROR;
        } else {
            results[i] = room ? SHM_FAN_WRITTEN : 0;
            any_full |= room ? 0 : SHM_FAN_ANY_FULL;
        }
    }
    if (mode == SHM_FAN_CHECK || (all && (any_full || any_error))) {
        if (crcs != stack_crcs)
            free(crcs);
        return any_full | any_error;
    }
    for (size_t i = 0; i < n; i++) {
        shm_producer *p = ps[i];
        if (results[i] != SHM_FAN_WRITTEN) {
            if (results[i] == 0)
                count_dropped(p, msgs);
            continue;
        }
        uint64_t pos = p->tail;
        const uint8_t *src = data;
        for (size_t j = 0; j < count; j++) {
            pos = put_record_crc(p, pos, src, lens[j], flags ? flags[j] : SHM_F_START, aux,
                                 have_crcs ? (int64_t)crcs[j] : -1);
            src += lens[j];
        }
        if (publish_tail(p, pos)) {
            results[i] = SHM_FAN_WRITTEN | SHM_FAN_WAKE;
            any_wake = SHM_FAN_ANY_WAKE;
        }
        written++;
    }
    if (crcs != stack_crcs)
        free(crcs);
    return written | any_wake | any_full | any_error;
}

int64_t shm_write_fanout_one(shm_producer *const *ps, size_t n, const uint8_t *data,
                             uint32_t len, int mode, int8_t *results)
{
    return shm_write_fanout(ps, n, data, len, &len, 1, NULL, 0, mode, results);
}

static inline int write_single(shm_producer *p, const uint8_t *data, uint32_t len,
                               uint32_t aux)
{
    if (!p || !p->ring || (len && !data))
        return SHM_EINVAL;
    if (len > p->capacity / 2 - SHM_REC_HEADER_SIZE)
        return SHM_ETOOBIG;
    int room = has_room(p, p->tail, space_needed(p, p->tail, rec_size(len)));
    if (room <= 0)
        return room ? room : SHM_AGAIN;
    uint64_t pos = put_record(p, p->tail, data, len, SHM_F_START, aux);
    return publish_tail(p, pos);
}

int shm_write_one(shm_producer *p, const uint8_t *data, uint32_t len)
{
    return write_single(p, data, len, 0);
}

int shm_write_tagged(shm_producer *p, const uint8_t *data, uint32_t len, uint32_t aux)
{
    return write_single(p, data, len, aux);
}

void shm_producer_count_dropped(shm_producer *p, uint64_t msgs)
{
    if (p && p->ring)
        count_dropped(p, msgs);
}

int shm_producer_can_write(shm_producer *p, uint32_t len)
{
    if (!p || !p->ring)
        return SHM_EINVAL;
    if (len > p->capacity / 2 - SHM_REC_HEADER_SIZE)
        return SHM_ETOOBIG;
    return has_room(p, p->tail, space_needed(p, p->tail, rec_size(len)));
}

int shm_producer_prepare_wait(shm_producer *p, uint32_t need)
{
    if (!p || !p->ring)
        return SHM_EINVAL;
    if (need > p->capacity / 2 - SHM_REC_HEADER_SIZE)
        return SHM_ETOOBIG;
    return announce_need(p, space_needed(p, p->tail, rec_size(need)));
}

int shm_producer_prepare_drain(shm_producer *p)
{
    if (!p || !p->ring)
        return SHM_EINVAL;
    /* Drained means the whole capacity is free: reload_head has checked
     * that tail - head lies within [0, capacity]. */
    return announce_need(p, p->capacity);
}

int64_t shm_producer_unread(shm_producer *p)
{
    if (!p || !p->ring)
        return SHM_EINVAL;
    int rc = reload_head(p);
    if (rc)
        return rc;
    return (int64_t)(p->tail - p->head_cache);
}

void shm_producer_close(shm_producer *p)
{
    if (p && p->ring)
        atomic_store_explicit(at32(p->ring, OFF_PRODUCER_STATE), SHM_PRODUCER_CLOSED,
                              memory_order_release);
}

int shm_producer_peer_waiting(const shm_producer *p)
{
    if (!p || !p->ring)
        return 0;
    return atomic_load_explicit(at32(p->ring, OFF_CONSUMER_WAITING), memory_order_relaxed) != 0;
}

void shm_producer_cancel_wait(shm_producer *p)
{
    if (p && p->ring)
        atomic_store_explicit(at32(p->ring, OFF_PRODUCER_WAITING), 0, memory_order_relaxed);
}

/* ---------------------------------------------------------------- consumer */

/* Reloads the producer position: it may only have moved forward, and never
 * more than a ring's worth ahead of us. */
static inline int reload_tail(shm_consumer *c)
{
    uint64_t tail = atomic_load_explicit(at64(c->ring, OFF_TAIL), memory_order_acquire);
    if (tail - c->head > c->capacity || tail - c->head < c->tail_cache - c->head ||
        (tail & (SHM_REC_ALIGN - 1)))
        return SHM_EPOSITION;
    c->tail_cache = tail;
    return 0;
}

/* Publishes the consumer position; see publish_tail for the argument.  The
 * free space is counted against our last view of the tail, which is never
 * ahead of the real one: a stale view or a bogus announcement can only make
 * the wake early, and the producer then looks again and re-announces. */
static inline int publish_head(shm_consumer *c, uint64_t pos)
{
    atomic_store_explicit(at64(c->ring, OFF_HEAD), pos, memory_order_release);
    atomic_store_explicit(at64(c->ring, OFF_HEAD_SEQ), c->seq, memory_order_relaxed);
    atomic_store_explicit(at64(c->ring, OFF_BYTES_READ), c->bytes, memory_order_relaxed);
    atomic_store_explicit(at64(c->ring, OFF_MSGS_READ), c->msgs, memory_order_relaxed);
    c->head = pos;
    atomic_thread_fence(memory_order_seq_cst);
    _Atomic uint32_t *w = at32(c->ring, OFF_PRODUCER_WAITING);
    uint32_t want = atomic_load_explicit(w, memory_order_relaxed);
    if (want == 0 || c->capacity - (c->tail_cache - pos) < want)
        return 0;
    return atomic_exchange_explicit(w, 0, memory_order_relaxed) != 0;
}

int64_t shm_read(shm_consumer *c, uint8_t *out, size_t out_cap, uint32_t *lens,
                 uint8_t *flags, uint32_t *aux, size_t max_count)
{
    if (!c || !c->ring || !lens || (out_cap && !out))
        return SHM_EINVAL;
    const uint64_t cap = c->capacity;
    const uint64_t max_payload = cap / 2 - SHM_REC_HEADER_SIZE;
    const uint64_t start = c->head;
    uint64_t head = start;
    size_t n = 0, used = 0;
    int mixed = 0, uneven = 0, err = 0;

    while (n < max_count) {
        if (head == c->tail_cache) {
            if ((err = reload_tail(c)))
                break;
            if (head == c->tail_cache)
                break;
        }
        uint64_t avail = c->tail_cache - head;
        uint64_t off = head & c->mask;
        uint64_t contig = cap - off;
        if (contig < SHM_REC_HEADER_SIZE) {
            /* Implicit padding: the producer only leaves a gap this small at
             * the end, so a record must follow at the start. */
            if (avail <= contig) {
                err = SHM_EPOSITION;
                break;
            }
            if (head + contig - start > cap)
                break;
            head += contig;
            continue;
        }
        if (avail < SHM_REC_HEADER_SIZE) {
            err = SHM_EPOSITION;
            break;
        }
        rec_header h;
        memcpy(&h, c->data + off, sizeof h);
        if (h.magic != SHM_REC_MAGIC) {
            err = SHM_EMAGIC;
            break;
        }
        if (h.version != SHM_RING_VERSION) {
            err = SHM_EVERSION;
            break;
        }
        /* A NOCRC record carries crc 0, so that flipping NOCRC on in a
         * checksummed record is caught rather than switching its check off. */
        if ((h.flags & ~KNOWN_FLAGS) || (!(h.flags & SHM_F_START) && h.aux != 0) ||
            ((h.flags & SHM_F_NOCRC) && h.crc != 0) ||
            ((h.flags & SHM_F_DESC) && (h.flags & SHM_F_CONT))) {
            err = SHM_EFLAGS;
            break;
        }
        if (!c->resync && h.seq != c->seq) {
            err = SHM_ESEQUENCE;
            break;
        }
        if (h.flags & SHM_F_PAD) {
            /* A producer pads only when the next record does not fit before
             * the end, which cannot be the case at offset 0. */
            if (h.flags != SHM_F_PAD || h.len != contig - SHM_REC_HEADER_SIZE || off == 0 ||
                h.crc != 0) {
                err = SHM_EPAD;
                break;
            }
            if (avail <= contig) {
                err = SHM_EPOSITION;
                break;
            }
            if (head + contig - start > cap)
                break;
            head += contig;
            continue;
        }
        if (h.len > max_payload || rec_size(h.len) > contig ||
            ((h.flags & SHM_F_DESC) && h.len != SHM_DESC_SIZE)) {
            err = SHM_ELENGTH;
            break;
        }
        uint64_t size = rec_size(h.len);
        if (size > avail) {
            err = SHM_EPOSITION;
            break;
        }
        if (head + size - start > cap)
            break;
        if (h.len > out_cap - used) {
            if (n == 0)
                err = SHM_ENOBUFS;
            break;
        }
        uint8_t *dst = out + used;
        const uint8_t *src = c->data + off + SHM_REC_HEADER_SIZE;
        if (h.flags & SHM_F_NOCRC) {
            if (h.len)
                memcpy(dst, src, h.len);
        } else if (rec_crc_from(shm_crc32c_copy(0, dst, src, h.len), h.len, h.flags, h.seq,
                                h.aux) != h.crc) {
            /* Checked on the private copy, in the same pass as the copy. */
            err = SHM_ECRC;
            break;
        }
        if (c->resync) {
            c->seq = h.seq;
            c->resync = 0;
        }
        lens[n] = h.len;
        uneven |= h.len != lens[0];
        if (flags)
            flags[n] = h.flags & (uint8_t)~SHM_F_NOCRC;
        if (aux)
            aux[n] = h.aux;
        mixed |= (h.flags & (uint8_t)~SHM_F_NOCRC) != SHM_F_START || h.aux != 0;
        used += h.len;
        head += size;
        c->seq++;
        c->bytes += (h.flags & SHM_F_CTRL) ? 0 : h.len; /* data only, as the producer */
        c->records++;
        c->msgs += !(h.flags & (SHM_F_MORE | SHM_F_CONT | SHM_F_CTRL));
        n++;
    }
    int wake = 0;
    if (head != start)
        wake = publish_head(c, head);
    if (n == 0 && err)
        return err;
    return ((int64_t)n << 3) | (uneven << 2) | (mixed << 1) | wake;
}

int64_t shm_consumer_available(shm_consumer *c)
{
    if (!c || !c->ring)
        return SHM_EINVAL;
    int rc = reload_tail(c);
    if (rc)
        return rc;
    return (int64_t)(c->tail_cache - c->head);
}

int shm_consumer_prepare_wait(shm_consumer *c)
{
    if (!c || !c->ring)
        return SHM_EINVAL;
    _Atomic uint32_t *w = at32(c->ring, OFF_CONSUMER_WAITING);
    atomic_store_explicit(w, 1, memory_order_relaxed);
    /* Store-load barrier: see publish_tail. */
    atomic_thread_fence(memory_order_seq_cst);
    int rc = reload_tail(c);
    if (rc)
        return rc;
    if (c->tail_cache != c->head) {
        atomic_store_explicit(w, 0, memory_order_relaxed);
        return 1;
    }
    return 0;
}

void shm_consumer_cancel_wait(shm_consumer *c)
{
    if (c && c->ring)
        atomic_store_explicit(at32(c->ring, OFF_CONSUMER_WAITING), 0, memory_order_relaxed);
}

int shm_ring_stats_read(const void *region, size_t region_size, shm_ring_stats *out)
{
    uint8_t *ring = (uint8_t *)(uintptr_t)region;
    if (!ring || !out || region_size < SHM_RING_HEADER_SIZE)
        return SHM_EINVAL;
    uint64_t magic;
    memcpy(&magic, ring + OFF_MAGIC, 8);
    if (magic != RING_MAGIC)
        return SHM_EHEADER;
    memcpy(&out->capacity, ring + OFF_CAPACITY, 8);
    out->head = atomic_load_explicit(at64(ring, OFF_HEAD), memory_order_acquire);
    out->tail = atomic_load_explicit(at64(ring, OFF_TAIL), memory_order_acquire);
    out->head_seq = atomic_load_explicit(at64(ring, OFF_HEAD_SEQ), memory_order_relaxed);
    out->tail_seq = atomic_load_explicit(at64(ring, OFF_TAIL_SEQ), memory_order_relaxed);
    out->bytes_written = atomic_load_explicit(at64(ring, OFF_BYTES_WRITTEN), memory_order_relaxed);
    out->bytes_read = atomic_load_explicit(at64(ring, OFF_BYTES_READ), memory_order_relaxed);
    out->msgs_written = atomic_load_explicit(at64(ring, OFF_MSGS_WRITTEN), memory_order_relaxed);
    out->msgs_read = atomic_load_explicit(at64(ring, OFF_MSGS_READ), memory_order_relaxed);
    out->msgs_dropped = atomic_load_explicit(at64(ring, OFF_MSGS_DROPPED), memory_order_relaxed);
    out->bulk_written = atomic_load_explicit(at64(ring, OFF_BULK_WRITTEN), memory_order_relaxed);
    out->bulk_read = atomic_load_explicit(at64(ring, OFF_BULK_READ), memory_order_relaxed);
    out->bulk_released = atomic_load_explicit(at64(ring, OFF_BULK_RELEASED), memory_order_relaxed);
    out->bulk_waiting = atomic_load_explicit(at32(ring, OFF_BULK_WAITING), memory_order_relaxed);
    out->consumer_waiting = atomic_load_explicit(at32(ring, OFF_CONSUMER_WAITING), memory_order_relaxed);
    out->producer_waiting = atomic_load_explicit(at32(ring, OFF_PRODUCER_WAITING), memory_order_relaxed);
    out->producer_state = atomic_load_explicit(at32(ring, OFF_PRODUCER_STATE), memory_order_relaxed);
    return 0;
}
