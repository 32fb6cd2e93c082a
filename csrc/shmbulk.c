/*
 * shmbulk.c: positions, descriptors and waiting for the bulk regions.
 * See shmring.h ("Bulk regions") for the contract and docs/protocol.md for
 * the byte layout.
 *
 * Rules this file keeps (those of shmring.c, applied to extents):
 *
 *  1. Everything in shared memory is hostile.  A descriptor is a private
 *     copy (the ring copied the record out and checked its CRC); it is
 *     validated against what the reader knows privately: the generation
 *     and capacity of the region as it was when the reader mapped it, the
 *     position the next extent must start at, and the extents it has not
 *     released.  The one shared word a side loads, the other side's
 *     position (bulk_released for the writer), may only move forward and
 *     never past what was allocated.
 *  2. Nothing loops over shared data: every call is O(1) apart from the
 *     copy and the checksum of one extent.
 *  3. Each word has one writer: the reader writes bulk_released (its line
 *     of the ring header) and clears bulk_waiting; the writer writes
 *     bulk_want and sets bulk_waiting, and writes the region.
 *  4. No waiting policy: "no room" is a return value.
 */
#include "shm_internal.h"

#include <string.h>

#define BULK_MAGIC 0x314b4c55424d4853ull /* "SHMBULK1" little-endian */
#define DESC_KNOWN_FLAGS SHM_DESC_CRC

/* Offsets in the region header (written once, by the writer). */
enum {
    BOFF_MAGIC = 0,       /* u64 */
    BOFF_VERSION = 8,     /* u32 */
    BOFF_HEADER_SIZE = 12, /* u32 */
    BOFF_CAPACITY = 16,   /* u64 */
    BOFF_GEN = 24,        /* u32 */
    BOFF_PID = 28,        /* u32, for display only */
    BOFF_END = 32,        /* the rest of the header is zero */
};

/* A descriptor, as it lies in a DESC record's payload. */
typedef struct desc_t {
    uint64_t pos;
    uint64_t len;
    uint32_t crc;
    uint32_t gen;
    uint32_t flags;
    uint32_t reserved;
} desc_t;
_Static_assert(sizeof(desc_t) == SHM_DESC_SIZE, "no padding in a descriptor");
_Static_assert(SHM_BULK_HEADER_SIZE % SHM_BULK_ALIGN == 0, "the data area is aligned");

static inline bool valid_capacity(uint64_t capacity)
{
    return capacity >= SHM_BULK_MIN_CAPACITY && capacity <= SHM_BULK_MAX_CAPACITY &&
           (capacity & (capacity - 1)) == 0;
}

static inline uint64_t align_up(uint64_t x, uint64_t a)
{
    return (x + (a - 1)) & ~(a - 1);
}

uint64_t shm_bulk_region_size(uint64_t capacity)
{
    return valid_capacity(capacity) ? SHM_BULK_HEADER_SIZE + capacity : 0;
}

int shm_bulk_init(void *region, size_t size, uint64_t capacity, uint32_t gen, uint32_t pid)
{
    uint8_t *r = region;
    if (!r || !valid_capacity(capacity) || size < SHM_BULK_HEADER_SIZE + capacity)
        return SHM_EINVAL;
    memset(r, 0, BOFF_END);
    uint64_t magic = BULK_MAGIC;
    uint32_t version = SHM_BULK_VERSION, hsize = SHM_BULK_HEADER_SIZE;
    memcpy(r + BOFF_MAGIC, &magic, 8);
    memcpy(r + BOFF_VERSION, &version, 4);
    memcpy(r + BOFF_HEADER_SIZE, &hsize, 4);
    memcpy(r + BOFF_CAPACITY, &capacity, 8);
    memcpy(r + BOFF_GEN, &gen, 4);
    memcpy(r + BOFF_PID, &pid, 4);
    return 0;
}

int shm_bulk_check(const void *header, size_t header_len, uint64_t file_size,
                   uint64_t max_capacity, uint64_t *capacity, uint32_t *gen)
{
    const uint8_t *h = header;
    if (!h || header_len < BOFF_END || !capacity || !gen)
        return SHM_EINVAL;
    uint64_t magic, cap;
    uint32_t version, hsize, g;
    memcpy(&magic, h + BOFF_MAGIC, 8);
    memcpy(&version, h + BOFF_VERSION, 4);
    memcpy(&hsize, h + BOFF_HEADER_SIZE, 4);
    memcpy(&cap, h + BOFF_CAPACITY, 8);
    memcpy(&g, h + BOFF_GEN, 4);
    if (magic != BULK_MAGIC || version != SHM_BULK_VERSION || hsize != SHM_BULK_HEADER_SIZE ||
        !valid_capacity(cap) || cap > max_capacity || file_size != SHM_BULK_HEADER_SIZE + cap)
        return SHM_EREGION;
    *capacity = cap;
    *gen = g;
    return 0;
}

/* ------------------------------------------------------------------ writer */

int shm_bulk_writer_attach(shm_bulk_writer *w, const shm_producer *p, void *region,
                           size_t size, uint64_t capacity, const shm_bulk_writer *prev)
{
    if (!w)
        return SHM_EINVAL;
    memset(w, 0, sizeof *w);
    uint8_t *r = region;
    if (!p || !p->ring || !r || !valid_capacity(capacity) ||
        size < SHM_BULK_HEADER_SIZE + capacity || (prev && (!prev->ring || prev->ring != p->ring)))
        return SHM_EINVAL;
    uint64_t cap;
    uint32_t gen;
    if (shm_bulk_check(r, size, SHM_BULK_HEADER_SIZE + capacity, capacity, &cap, &gen))
        return SHM_EREGION;
    if (prev && gen <= prev->gen)
        return SHM_EINVAL;
    w->ring = p->ring;
    w->data = r + SHM_BULK_HEADER_SIZE;
    w->capacity = cap;
    w->mask = cap - 1;
    w->gen = gen;
    uint64_t start;
    if (prev) {
        start = prev->tail;
        w->released_cache = prev->released_cache;
        w->bytes = prev->bytes;
    } else {
        start = atomic_load_explicit(at64(w->ring, OFF_BULK_RELEASED), memory_order_acquire);
        w->released_cache = start;
        w->bytes = atomic_load_explicit(at64(w->ring, OFF_BULK_WRITTEN), memory_order_relaxed);
    }
    /* A region's positions begin at a multiple of its capacity, at or after
     * every position used before: they only ever move forward. */
    w->base = w->tail = align_up(start, cap);
    return 0;
}

/* Reloads bulk_released: it may only move forward, and never past what we
 * have allocated. */
static inline int reload_released(shm_bulk_writer *w)
{
    uint64_t rel = atomic_load_explicit(at64(w->ring, OFF_BULK_RELEASED), memory_order_acquire);
    if (rel - w->released_cache > w->tail - w->released_cache)
        return SHM_EPOSITION;
    w->released_cache = rel;
    return 0;
}

/* Where an extent of `len` bytes allocated now starts (skipping to the
 * start of the data area rather than wrapping), and where it ends. */
static inline uint64_t extent_start(const shm_bulk_writer *w, uint64_t len)
{
    uint64_t off = w->tail & w->mask;
    return off + len <= w->capacity ? w->tail : w->tail + (w->capacity - off);
}

/* The position up to which the consumer must have released for an extent
 * ending at `end` to fit: nothing released before this region's base
 * occupies it. */
static inline bool fits(const shm_bulk_writer *w, uint64_t end)
{
    uint64_t floor = w->tail - w->released_cache > w->tail - w->base ? w->base : w->released_cache;
    return end - floor <= w->capacity;
}

static inline int has_room(shm_bulk_writer *w, uint64_t end)
{
    if (fits(w, end))
        return 1;
    int rc = reload_released(w);
    if (rc)
        return rc;
    return fits(w, end);
}

static inline int check_len(const shm_bulk_writer *w, uint64_t len)
{
    if (!w || !w->ring)
        return SHM_EINVAL;
    if (len == 0)
        return SHM_EINVAL;
    if (len > w->capacity / 2)
        return SHM_ETOOBIG;
    return 0;
}

int64_t shm_bulk_alloc(shm_bulk_writer *w, uint64_t len, uint8_t *desc)
{
    int rc = check_len(w, len);
    if (rc)
        return rc;
    if (!desc)
        return SHM_EINVAL;
    uint64_t start = extent_start(w, len);
    rc = has_room(w, start + len);
    if (rc <= 0)
        return rc ? rc : SHM_AGAIN;
    desc_t d = {start, len, 0, w->gen, 0, 0};
    memcpy(desc, &d, sizeof d);
    w->tail = align_up(start + len, SHM_BULK_ALIGN);
    return (int64_t)(SHM_BULK_HEADER_SIZE + (start & w->mask));
}

/* Bytes put, stored with each extent for monitoring tools (an estimate:
 * an extent whose descriptor is never published is counted too). */
static inline void count_bytes(shm_bulk_writer *w, uint64_t len)
{
    w->bytes += len;
    atomic_store_explicit(at64(w->ring, OFF_BULK_WRITTEN), w->bytes, memory_order_relaxed);
}

/* Frames up to STREAMED are copied in one pass (shm_crc32c_copy): each word
 * is checksummed from the register it is copied through, which measured
 * faster at 64 KiB and 1 MiB than a whole memcpy then the checksum, and
 * their copies stay in the cache for whoever reads them next.
 *
 * Larger frames (a 16 MiB extent is eight times the L2 cache) are copied
 * with non-temporal stores, with the checksum still taken from the
 * registers in the same pass (shm_crc32c_copy_stream).  An ordinary copy
 * of a frame that size reads every destination line before writing it and
 * evicts it later, three streams through memory for two.  Measured in the
 * two processes of a 16 MiB PUSH -> PULL (docs/performance.md), the
 * streamed copies took about a fifth less CPU on the sender and a sixth
 * less on the receiver (14-28% and 3-23% in three pairs each).  Until then
 * such frames went in 256 KiB pieces: memcpy, then the checksum of the
 * piece from the cache.
 *
 * Without a checksum, libc's memcpy stays: on a quiet machine it moved
 * 16 MiB frames 10-15% faster than the streamed copy (three alternating
 * pairs of the bench), and the two were level under load.  A 64-byte
 * streamed copy (AVX-512) fared no better in session 5: less CPU at load 5,
 * level nearer quiet, a lower rate in the bench (docs/performance.md). */
#define STREAMED ((uint64_t)2 * 1024 * 1024)

/* memcpy(dst, src, len), returning the CRC32C of the bytes copied: those
 * in the register that is stored to dst, so the writer checksums its
 * private source and the reader its private copy, each read once. */
static uint32_t copy_crc(uint8_t *dst, const uint8_t *src, uint64_t len)
{
    if (len <= STREAMED)
        return shm_crc32c_copy(0, dst, src, len);
    return shm_crc32c_copy_stream(0, dst, src, len);
}

/* The descriptor says its extent is checksummed, and with what. */
static void stamp_crc(uint8_t *desc, uint32_t crc)
{
    uint32_t flags = SHM_DESC_CRC;
    memcpy(desc + offsetof(desc_t, crc), &crc, 4);
    memcpy(desc + offsetof(desc_t, flags), &flags, 4);
}

int64_t shm_bulk_put(shm_bulk_writer *w, const uint8_t *src, uint64_t len, int checksum,
                     uint8_t *desc)
{
    if (!src)
        return SHM_EINVAL;
    int64_t off = shm_bulk_alloc(w, len, desc);
    if (off < 0)
        return off;
    uint8_t *dst = w->data - SHM_BULK_HEADER_SIZE + off;
    if (!checksum) {
        memcpy(dst, src, len);
    } else {
        /* Computed on the private source: what the reader checks is what
         * the caller gave, whatever the region holds. */
        stamp_crc(desc, copy_crc(dst, src, len));
    }
    count_bytes(w, len);
    return off;
}

int64_t shm_bulk_put_sum(shm_bulk_writer *w, const uint8_t *src, uint64_t len, uint32_t crc,
                         uint8_t *desc)
{
    /* A plain put, then the descriptor says which CRC the copy carries
     * (it is private until its record is published). */
    int64_t off = shm_bulk_put(w, src, len, 0, desc);
    if (off >= 0)
        stamp_crc(desc, crc);
    return off;
}

int shm_bulk_seal(shm_bulk_writer *w, uint8_t *desc, int checksum)
{
    if (!w || !w->ring || !desc)
        return SHM_EINVAL;
    desc_t d;
    memcpy(&d, desc, sizeof d);
    uint64_t off = d.pos & w->mask;
    /* Only an extent allocated here and not yet undone. */
    if (d.gen != w->gen || d.len == 0 || d.len > w->capacity / 2 || off + d.len > w->capacity ||
        d.pos - w->base > w->tail - w->base || d.pos + d.len - w->base > w->tail - w->base ||
        d.flags || d.crc)
        return SHM_EINVAL;
    if (checksum) {
        d.crc = shm_crc32c(0, w->data + off, d.len);
        d.flags = SHM_DESC_CRC;
        memcpy(desc, &d, sizeof d);
    }
    count_bytes(w, d.len);
    return 0;
}

int shm_bulk_rewind(shm_bulk_writer *w, uint64_t tail)
{
    if (!w || !w->ring)
        return SHM_EINVAL;
    /* Back, but not before this region's base nor before what the consumer
     * has released (which it can only have done for published extents). */
    if (w->tail - tail > w->tail - w->base || w->tail - tail > w->tail - w->released_cache)
        return SHM_EINVAL;
    w->tail = tail;
    return 0;
}

int shm_bulk_prepare_wait(shm_bulk_writer *w, uint64_t len)
{
    int rc = check_len(w, len);
    if (rc)
        return rc;
    uint64_t end = extent_start(w, len) + len;
    _Atomic uint32_t *waiting = at32(w->ring, OFF_BULK_WAITING);
    /* The announcement is the position bulk_released must reach.  It is
     * stored before the flag (release), so a consumer that sees the flag
     * (acquire) sees this want or a later one. */
    atomic_store_explicit(at64(w->ring, OFF_BULK_WANT), end - w->capacity, memory_order_relaxed);
    atomic_store_explicit(waiting, 1, memory_order_release);
    /* Store-load barrier: the mirror image of shm_bulk_release's fence. */
    atomic_thread_fence(memory_order_seq_cst);
    rc = reload_released(w);
    if (rc)
        return rc;
    if (fits(w, end)) {
        atomic_store_explicit(waiting, 0, memory_order_relaxed);
        return 1;
    }
    return 0;
}

void shm_bulk_cancel_wait(shm_bulk_writer *w)
{
    if (w && w->ring)
        atomic_store_explicit(at32(w->ring, OFF_BULK_WAITING), 0, memory_order_relaxed);
}

int64_t shm_bulk_unreleased(shm_bulk_writer *w)
{
    if (!w || !w->ring)
        return SHM_EINVAL;
    int rc = reload_released(w);
    if (rc)
        return rc;
    return (int64_t)(w->tail - w->released_cache);
}

/* ------------------------------------------------------------------ reader */

int shm_bulk_reader_attach(shm_bulk_reader *r, const shm_consumer *c, uint64_t capacity,
                           uint32_t gen, const shm_bulk_reader *prev, int resync)
{
    if (!r)
        return SHM_EINVAL;
    memset(r, 0, sizeof *r);
    if (!c || !c->ring || !valid_capacity(capacity) ||
        (prev && (prev->ring != c->ring || gen <= prev->gen)))
        return SHM_EINVAL;
    r->ring = c->ring;
    r->capacity = capacity;
    r->mask = capacity - 1;
    r->gen = gen;
    r->fresh = 1;
    if (prev) {
        r->expect = prev->expect;
        r->released = prev->released;
        r->bytes = prev->bytes;
        r->resync = prev->resync;
    } else {
        /* Our own line: what we (or the reader before us) published. */
        r->released = atomic_load_explicit(at64(r->ring, OFF_BULK_RELEASED), memory_order_relaxed);
        r->expect = r->released;
        r->bytes = atomic_load_explicit(at64(r->ring, OFF_BULK_READ), memory_order_relaxed);
        r->resync = resync != 0;
    }
    r->base = r->expect;
    return 0;
}

int shm_bulk_accept(shm_bulk_reader *r, const uint8_t *desc)
{
    if (!r || !r->ring || !desc)
        return SHM_EINVAL;
    desc_t d;
    memcpy(&d, desc, sizeof d);
    if (d.gen != r->gen) {
        if (d.gen < r->gen)
            return SHM_EEXTENT;
        r->want_gen = d.gen;
        return SHM_ENEWREGION;
    }
    const uint64_t cap = r->capacity, off = d.pos & r->mask;
    if (d.len == 0 || d.len > cap / 2 || (d.pos & (SHM_BULK_ALIGN - 1)) ||
        (d.flags & ~(uint32_t)DESC_KNOWN_FLAGS) || d.reserved ||
        (!(d.flags & SHM_DESC_CRC) && d.crc != 0) || off + d.len > cap)
        return SHM_EEXTENT;
    uint64_t base = r->base;
    if (r->resync) {
        /* Taking over a ring: the first extent is where it is, but not
         * before what the reader before us released. */
        if (d.pos - r->released >= (1ull << 63))
            return SHM_EEXTENT;
        base = d.pos;
    } else if (r->fresh) {
        /* The first extent of a region starts its data area, at or after
         * every position used before. */
        if (off != 0 || d.pos - r->expect >= (1ull << 63))
            return SHM_EEXTENT;
        base = d.pos;
    } else {
        uint64_t e = r->expect, eoff = e & r->mask;
        uint64_t start = eoff + d.len <= cap ? e : e + (cap - eoff);
        if (d.pos != start)
            return SHM_EEXTENT;
    }
    /* Nothing we hold may lie under it: from the first position we have
     * not released (or the region's first) to its end, at most a region. */
    uint64_t end = d.pos + d.len;
    uint64_t floor = end - r->released > end - base ? base : r->released;
    if (end - floor > cap)
        return SHM_EEXTENT;
    r->base = base;
    r->fresh = 0;
    r->resync = 0;
    r->expect = align_up(end, SHM_BULK_ALIGN);
    r->pos = d.pos;
    r->offset = SHM_BULK_HEADER_SIZE + off;
    r->len = d.len;
    r->crc = d.crc;
    r->checked = (d.flags & SHM_DESC_CRC) != 0;
    r->bytes += d.len;
    atomic_store_explicit(at64(r->ring, OFF_BULK_READ), r->bytes, memory_order_relaxed);
    return 0;
}

int shm_bulk_copy_verify(uint8_t *dst, const uint8_t *src, uint64_t len, uint32_t crc,
                         uint32_t checked)
{
    if ((!dst || !src) && len)
        return SHM_EINVAL;
    if (!checked) {
        memcpy(dst, src, len);
        return 0;
    }
    return copy_crc(dst, src, len) == crc ? 0 : SHM_EBULKCRC;
}

int shm_bulk_verify(const uint8_t *copy, uint64_t len, uint32_t crc, uint32_t checked)
{
    if (!copy && len)
        return SHM_EINVAL;
    if (checked && shm_crc32c(0, copy, len) != crc)
        return SHM_EBULKCRC;
    return 0;
}

/*
 * Publishes `pos` and reports whether the writer must be woken: the same
 * argument as publish_tail in shmring.c.  The writer announces with
 *     store(want); store(waiting, 1); fence(seq_cst); load(released)
 * and we publish with
 *     store(released); fence(seq_cst); load(waiting); load(want).
 * Either the writer's reload sees our release or we see its flag.  The
 * writer is woken only once `pos` has reached what it wants, so it is not
 * woken for every small release; a bogus want can at worst wake it early,
 * after which it looks again and announces again.
 */
int shm_bulk_release(shm_bulk_reader *r, uint64_t pos)
{
    if (!r || !r->ring)
        return SHM_EINVAL;
    if (pos - r->released > r->expect - r->released)
        return SHM_EINVAL;
    if (pos == r->released)
        return 0;
    atomic_store_explicit(at64(r->ring, OFF_BULK_RELEASED), pos, memory_order_release);
    r->released = pos;
    atomic_thread_fence(memory_order_seq_cst);
    _Atomic uint32_t *waiting = at32(r->ring, OFF_BULK_WAITING);
    if (atomic_load_explicit(waiting, memory_order_acquire) == 0)
        return 0;
    uint64_t want = atomic_load_explicit(at64(r->ring, OFF_BULK_WANT), memory_order_relaxed);
    if (pos - want >= (1ull << 63))
        return 0; /* not there yet */
    return atomic_exchange_explicit(waiting, 0, memory_order_relaxed) != 0;
}
