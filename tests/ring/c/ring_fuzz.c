/*
 * Fuzz driver for the shmring C core: hostile ring states at C speed.
 *
 *   ring_fuzz CASES [SEED]
 *
 * Each case formats a ring in a region allocated at its exact size (so
 * AddressSanitizer sees any access past it), gives it an honest history
 * (batches of every flag combination, checksummed or not, reads, waiter
 * announcements), damages it with one to four mutations (header fields,
 * positions, waiter words, record header fields, payload bits, random
 * spans, records forged with a valid CRC), then lets a consumer, a new
 * consumer and the producer work on it through every entry point.
 *
 * Checked on every call:
 *   - the return value is one the header documents for that function;
 *   - a read returns at most max_count records and out_cap bytes, never
 *     advances the head by more than the capacity, reports no PAD or
 *     NOCRC flag, and fills only the output it was given;
 *   - a corruption code is sticky: the next read returns it again (unless
 *     available() or prepare_wait() refreshed the cached tail meanwhile:
 *     "the record runs past the tail" is judged against that cache);
 *   - a consumer writes no byte of the region but its own header line and
 *     the producer's waiter word; a producer writes nothing in the
 *     consumer's line and nothing in the immutable part of the header;
 *   - with one mutation (not a forgery) on a checksummed ring, the live
 *     consumer delivers exactly the records written, in order: payload,
 *     flags and aux (the checksum covers the header fields too).
 * Built with -fsanitize=address,undefined (tox -e asan), an out-of-bounds
 * access or undefined behaviour aborts the run.
 *
 * Prints "ok cases=N reads=R records=D errors=E" and exits 0, or prints
 * the case number and the first violation and exits 1.
 */
#include "shmring.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_SENT 512
#define MAX_BATCH 6

static uint64_t rng_state;

static uint64_t rnd(void)
{
    uint64_t x = rng_state;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return rng_state = x;
}

static uint64_t below(uint64_t n)
{
    return n ? rnd() % n : 0;
}

static unsigned long long case_no;

#define FAIL(...)                                                                   \
    do {                                                                            \
        fprintf(stderr, "case %llu: ", case_no);                                    \
        fprintf(stderr, __VA_ARGS__);                                               \
        fprintf(stderr, "\n");                                                      \
        exit(1);                                                                    \
    } while (0)

/* Header offsets, from docs/protocol.md. */
enum { H_TAIL = 64, H_TAIL_SEQ = 72, H_STATE = 88, H_HEAD = 128, H_HEAD_SEQ = 136,
       H_CWAIT = 192, H_PWAIT = 196 };

static uint64_t get64(const uint8_t *r, size_t off)
{
    uint64_t v;
    memcpy(&v, r + off, 8);
    return v;
}

static void put64(uint8_t *r, size_t off, uint64_t v)
{
    memcpy(r + off, &v, 8);
}

static void put32(uint8_t *r, size_t off, uint32_t v)
{
    memcpy(r + off, &v, 4);
}

static uint64_t rec_size(uint64_t len)
{
    return (len + SHM_REC_HEADER_SIZE + 7) & ~(uint64_t)7;
}

typedef struct {
    uint32_t len;
    uint32_t tag;
    uint32_t aux;  /* as stored: 0 unless flags has START */
    uint8_t flags;
} sent_t;

/* A record's crc, from docs/protocol.md: CRC32C of the payload, continued
 * over flags (1), len (4), seq (8) and aux (4), little-endian. */
static uint32_t record_crc(const uint8_t *payload, uint32_t len, uint8_t flags, uint64_t seq,
                           uint32_t aux)
{
    uint8_t t[17];
    t[0] = flags;
    for (int i = 0; i < 4; i++)
        t[1 + i] = (uint8_t)(len >> (8 * i));
    for (int i = 0; i < 8; i++)
        t[5 + i] = (uint8_t)(seq >> (8 * i));
    for (int i = 0; i < 4; i++)
        t[13 + i] = (uint8_t)(aux >> (8 * i));
    return shm_crc32c(shm_crc32c(0, payload, len), t, sizeof t);
}

typedef struct {
    uint8_t *region;
    size_t size;
    uint64_t cap;
    uint64_t maxp;
    int checksum;
    shm_producer p;
    shm_consumer c;
    sent_t sent[MAX_SENT];
    size_t nsent;
    size_t next;       /* index of the next payload due to the live consumer */
    int mutations;
    int forged;
    int fresh;         /* the consumer attached after the damage */
    int sticky;        /* last read's corruption code, 0 if none */
    unsigned long long reads, records, errors;
} ring_t;

static uint8_t byte_of(uint32_t tag, uint32_t i)
{
    return (uint8_t)(tag * 131u + i * 7u + (tag >> 8));
}

static void fill(uint8_t *dst, uint32_t len, uint32_t tag)
{
    for (uint32_t i = 0; i < len; i++)
        dst[i] = byte_of(tag, i);
}

/* Bytes outside [lo1,hi1), [lo2,hi2) and, with data, the data area must be
 * unchanged. */
static void only_changed(const ring_t *r, const uint8_t *before, size_t lo1, size_t hi1,
                         size_t lo2, size_t hi2, int data, const char *who)
{
    size_t end = data ? SHM_RING_HEADER_SIZE : r->size;
    if (!memcmp(before, r->region, end))
        return;
    for (size_t i = 0; i < end; i++)
        if (before[i] != r->region[i] && !(i >= lo1 && i < hi1) && !(i >= lo2 && i < hi2))
            FAIL("%s wrote byte %zu of the region", who, i);
}

static int corruption(int64_t rc)
{
    return rc <= SHM_EHEADER && rc >= SHM_EPAD;
}

static void honest_write(ring_t *r)
{
    size_t count = 1 + below(MAX_BATCH);
    uint32_t lens[MAX_BATCH];
    uint8_t flags[MAX_BATCH];
    static uint8_t data[MAX_BATCH * 4096];
    static const uint8_t choices[] = {SHM_F_START, SHM_F_START, SHM_F_START | SHM_F_MORE,
                                      SHM_F_CONT, SHM_F_MORE, 0, SHM_F_START | SHM_F_CONT,
                                      SHM_F_START | SHM_F_DESC, SHM_F_DESC | SHM_F_MORE,
                                      SHM_F_START | SHM_F_CTRL, SHM_F_CTRL | SHM_F_MORE};
    size_t used = 0;
    for (size_t i = 0; i < count; i++) {
        uint64_t pick = below(4);
        lens[i] = (uint32_t)(pick == 0 ? 0 : pick == 1 ? r->maxp : below(r->maxp / 4 + 1));
        flags[i] = choices[below(sizeof choices)];
        if (flags[i] & SHM_F_DESC)
            lens[i] = SHM_DESC_SIZE; /* one descriptor, as far as the ring knows */
        fill(data + used, lens[i], (uint32_t)(r->nsent + i));
        used += lens[i];
    }
    if (below(4) == 0) {
        /* The one-record entry points: a plain message, or one tagged with
         * an aux word as REQ and REP write them. */
        uint32_t tag_aux = (uint32_t)below(3) * 0x7fffffffu;
        int rc1 = tag_aux ? shm_write_tagged(&r->p, data, lens[0], tag_aux)
                          : shm_write_one(&r->p, data, lens[0]);
        if (rc1 == SHM_AGAIN || rc1 == SHM_ETOOBIG || (rc1 == SHM_EPOSITION && r->mutations))
            return;
        if (rc1 != 0 && rc1 != 1)
            FAIL("one-record write returned %d", rc1);
        if (r->nsent < MAX_SENT) {
            r->sent[r->nsent].len = lens[0];
            r->sent[r->nsent].tag = (uint32_t)r->nsent;
            r->sent[r->nsent].flags = SHM_F_START;
            r->sent[r->nsent].aux = tag_aux;
            r->nsent++;
        }
        return;
    }
    /* One draw per statement: the order of evaluation of arguments is
     * unspecified, and runs must be reproducible from their seed. */
    int atomic = (int)below(2);
    int announce = (int)below(2);
    uint32_t aux = (uint32_t)below(3) * 0x7fffffffu;
    int64_t rc = shm_write(&r->p, data, used, lens, count, flags, aux, atomic, announce);
    if (rc == SHM_AGAIN || rc == SHM_ETOOBIG || (rc == SHM_EPOSITION && r->mutations))
        return;
    if (rc < 0)
        FAIL("write returned %lld", (long long)rc);
    size_t n = (size_t)(rc >> 1);
    if (n > count || (atomic && n != count))
        FAIL("write reported %zu of %zu records", n, count);
    for (size_t i = 0; i < n && r->nsent < MAX_SENT; i++) {
        r->sent[r->nsent].len = lens[i];
        r->sent[r->nsent].tag = (uint32_t)r->nsent;
        r->sent[r->nsent].flags = flags[i];
        r->sent[r->nsent].aux = (flags[i] & SHM_F_START) ? aux : 0;
        r->nsent++;
    }
}

/* One read with exact-size buffers; checks everything about the result. */
static void checked_read(ring_t *r)
{
    size_t max_count = 1 + below(8);
    size_t out_cap = below(3) == 0 ? below(64) : (size_t)r->cap;
    uint8_t *out = malloc(out_cap ? out_cap : 1);
    uint32_t *lens = malloc(max_count * sizeof *lens);
    uint8_t *flags = below(4) ? malloc(max_count) : NULL;
    uint32_t *aux = below(4) ? malloc(max_count * sizeof *aux) : NULL;
    uint8_t *before = malloc(r->size);
    memcpy(before, r->region, r->size);
    uint64_t head0 = r->c.head;
    int64_t rc = shm_read(&r->c, out_cap ? out : NULL, out_cap, lens, flags, aux, max_count);
    r->reads++;
    only_changed(r, before, H_HEAD, H_CWAIT, H_PWAIT, H_PWAIT + 4, 0, "a read");
    if (r->c.head - head0 > r->cap)
        FAIL("a read advanced %llu bytes", (unsigned long long)(r->c.head - head0));
    if (rc < 0) {
        if (!corruption(rc) && rc != SHM_ENOBUFS)
            FAIL("read returned %lld", (long long)rc);
        if (r->sticky && corruption(rc) && rc != r->sticky)
            FAIL("corruption %d became %lld", r->sticky, (long long)rc);
        r->sticky = corruption(rc) ? (int)rc : 0;
        r->errors++;
    } else {
        size_t n = (size_t)(rc >> 3), used = 0;
        if (r->sticky)
            FAIL("corruption %d, then a read returned %zu records", r->sticky, n);
        if (n > max_count)
            FAIL("read returned %zu records for max_count %zu", n, max_count);
        for (size_t i = 0; i < n; i++) {
            if (lens[i] > r->maxp || lens[i] > out_cap - used)
                FAIL("record %zu has length %u", i, lens[i]);
            if (flags && (flags[i] & (SHM_F_PAD | SHM_F_NOCRC | 0x80)))
                FAIL("record %zu reports flags %#x", i, flags[i]);
            if (flags && (flags[i] & SHM_F_DESC) &&
                ((flags[i] & SHM_F_CONT) || lens[i] != SHM_DESC_SIZE))
                FAIL("record %zu: DESC with flags %#x, length %u", i, flags[i], lens[i]);
            int truth = !r->fresh && !r->forged && r->checksum && r->mutations <= 1;
            if (truth) {
                if (r->next >= r->nsent) {
                    if (r->nsent < MAX_SENT)
                        FAIL("delivered more records than were written");
                } else {
                    const sent_t *s = &r->sent[r->next];
                    if (lens[i] != s->len)
                        FAIL("record %zu: length %u, written %u", r->next, lens[i], s->len);
                    for (uint32_t j = 0; j < lens[i]; j++)
                        if (out[used + j] != byte_of(s->tag, j))
                            FAIL("record %zu: byte %u is not what was written", r->next, j);
                    if (flags && flags[i] != s->flags)
                        FAIL("record %zu: flags %#x, written %#x", r->next, flags[i], s->flags);
                    if (aux && aux[i] != s->aux)
                        FAIL("record %zu: aux %u, written %u", r->next, aux[i], s->aux);
                }
            }
            r->next++;
            used += lens[i];
        }
        r->records += n;
    }
    free(before);
    free(out);
    free(lens);
    free(flags);
    free(aux);
}

static void checked_consumer_misc(ring_t *r)
{
    r->sticky = 0;
    uint8_t *before = malloc(r->size);
    memcpy(before, r->region, r->size);
    int64_t rc;
    switch (below(3)) {
    case 0:
        rc = shm_consumer_available(&r->c);
        if (rc < 0 ? rc != SHM_EPOSITION : (uint64_t)rc > r->cap)
            FAIL("available returned %lld", (long long)rc);
        only_changed(r, before, 0, 0, 0, 0, 0, "available");
        break;
    case 1:
        rc = shm_consumer_prepare_wait(&r->c);
        if (rc != 0 && rc != 1 && rc != SHM_EPOSITION)
            FAIL("consumer prepare_wait returned %lld", (long long)rc);
        only_changed(r, before, H_CWAIT, H_CWAIT + 4, 0, 0, 0, "consumer prepare_wait");
        break;
    default:
        shm_consumer_cancel_wait(&r->c);
        only_changed(r, before, H_CWAIT, H_CWAIT + 4, 0, 0, 0, "consumer cancel_wait");
    }
    free(before);
}

static void checked_producer(ring_t *r)
{
    uint8_t *before = malloc(r->size);
    memcpy(before, r->region, r->size);
    uint32_t len = (uint32_t)below(r->maxp + 2);
    int64_t rc;
    uint64_t op = below(7);
    if (op == 0) {
        honest_write(r);
        rc = 0;
    } else if (op == 1) {
        uint8_t *data = malloc(len ? len : 1);
        fill(data, len, 0);
        rc = shm_write_one(&r->p, data, len);
        free(data);
        if (rc != 0 && rc != 1 && rc != SHM_AGAIN && rc != SHM_ETOOBIG && rc != SHM_EPOSITION)
            FAIL("write_one returned %lld", (long long)rc);
    } else if (op == 2) {
        rc = shm_producer_can_write(&r->p, len);
        if (rc != 0 && rc != 1 && rc != SHM_ETOOBIG && rc != SHM_EPOSITION)
            FAIL("can_write returned %lld", (long long)rc);
    } else if (op == 3) {
        rc = shm_producer_prepare_wait(&r->p, len);
        if (rc != 0 && rc != 1 && rc != SHM_ETOOBIG && rc != SHM_EPOSITION)
            FAIL("producer prepare_wait returned %lld", (long long)rc);
    } else if (op == 4) {
        rc = shm_producer_prepare_drain(&r->p);
        if (rc != 0 && rc != 1 && rc != SHM_EPOSITION)
            FAIL("prepare_drain returned %lld", (long long)rc);
    } else if (op == 5) {
        rc = shm_producer_unread(&r->p);
        if (rc < 0 ? rc != SHM_EPOSITION : (uint64_t)rc > r->cap)
            FAIL("unread returned %lld", (long long)rc);
    } else {
        shm_ring_stats s;
        rc = shm_ring_stats_read(r->region, r->size, &s);
        if (rc != 0 && rc != SHM_EHEADER)
            FAIL("stats returned %lld", (long long)rc);
    }
    /* The producer owns the data area, its header line and the waiter words. */
    only_changed(r, before, H_TAIL, H_HEAD, H_CWAIT, H_PWAIT + 4, 1, "the producer");
    free(before);
}

static uint64_t interesting(uint64_t old, int bits)
{
    uint64_t top = bits == 64 ? ~0ull : (1ull << bits) - 1;
    uint64_t cap = 4096;
    switch (below(10)) {
    case 0: return 0;
    case 1: return top;
    case 2: return old ^ (1ull << below((uint64_t)bits));
    case 3: {
        uint64_t step = below(2) ? 8 : -8ull;
        return (old + step * (1 + below(3))) & top;
    }
    case 4: {
        uint64_t step = below(2) ? cap : -cap;
        return (old + step / (1 + below(16))) & top;
    }
    case 5: return (1 + below(4)) & top;
    case 6: return (old + 1) & top;
    default: return rnd() & top;
    }
}

/* Data-area offset of a record on the ring now (from head), or a random one. */
static uint64_t some_record(ring_t *r)
{
    uint64_t head = get64(r->region, H_HEAD), tail = get64(r->region, H_TAIL);
    uint64_t offs[64];
    size_t n = 0;
    uint64_t pos = head;
    for (int guard = 0; pos != tail && guard < 64 && tail - head <= r->cap && !((head | tail) & 7);
         guard++) {
        uint64_t off = pos & (r->cap - 1), contig = r->cap - off;
        if (contig < SHM_REC_HEADER_SIZE) {
            pos += contig;
            continue;
        }
        uint32_t len;
        uint8_t fl;
        memcpy(&fl, r->region + SHM_RING_HEADER_SIZE + off + 3, 1);
        memcpy(&len, r->region + SHM_RING_HEADER_SIZE + off + 4, 4);
        if (fl & SHM_F_PAD) {
            pos += contig;
            continue;
        }
        offs[n++] = off;
        if (rec_size(len) > contig)
            break;
        pos += rec_size(len);
    }
    if (n && below(5))
        return offs[below(n)];
    return 8 * below((r->cap - SHM_REC_HEADER_SIZE) / 8 + 1);
}

static void mutate(ring_t *r)
{
    uint8_t *reg = r->region;
    static const size_t fields64[] = {0, 16, 64, 72, 80, 96, 128, 136, 144, 152};
    static const size_t fields32[] = {8, 12, 88, 192, 196};
    static const struct { size_t at, size; } rec_fields[] = {
        {0, 2}, {2, 1}, {3, 1}, {4, 4}, {8, 8}, {16, 4}, {20, 4}};
    r->mutations++;
    switch (below(10)) {
    case 0: { /* positions */
        size_t off = below(2) ? H_HEAD : H_TAIL;
        put64(reg, off, interesting(get64(reg, off), 64));
        break;
    }
    case 1: {
        size_t off = fields64[below(10)];
        put64(reg, off, interesting(get64(reg, off), 64));
        break;
    }
    case 2: {
        size_t off = fields32[below(5)];
        uint32_t v;
        memcpy(&v, reg + off, 4);
        put32(reg, off, (uint32_t)interesting(v, 32));
        break;
    }
    case 3:
    case 4:
    case 5: { /* a record header field */
        uint64_t base = SHM_RING_HEADER_SIZE + some_record(r);
        size_t k = below(7);
        uint64_t old = 0;
        memcpy(&old, reg + base + rec_fields[k].at, rec_fields[k].size);
        uint64_t v = interesting(old, (int)(8 * rec_fields[k].size));
        memcpy(reg + base + rec_fields[k].at, &v, rec_fields[k].size);
        break;
    }
    case 6: { /* payload bits */
        uint64_t at = SHM_RING_HEADER_SIZE + some_record(r) + SHM_REC_HEADER_SIZE + below(64);
        if (at < r->size)
            reg[at] ^= (uint8_t)(1u << below(8));
        break;
    }
    case 7: { /* a random span anywhere */
        size_t k = 1 + below(16);
        size_t at = below(r->size - k + 1);
        for (size_t i = 0; i < k; i++)
            reg[at + i] = (uint8_t)rnd();
        break;
    }
    case 8: { /* a valid-looking record at the tail, published with a chosen tail */
        r->forged = 1;
        uint64_t tail = get64(reg, H_TAIL), off = tail & (r->cap - 1), contig = r->cap - off;
        uint64_t lens[] = {0, 8, r->maxp, r->maxp + 8, contig - SHM_REC_HEADER_SIZE,
                           contig - SHM_REC_HEADER_SIZE + 8, below(r->cap)};
        uint32_t len = (uint32_t)lens[below(7)];
        if (contig >= SHM_REC_HEADER_SIZE) {
            uint8_t *h = reg + SHM_RING_HEADER_SIZE + off;
            uint64_t avail_body = r->size - (size_t)(h - reg) - SHM_REC_HEADER_SIZE;
            uint64_t seq = get64(reg, H_TAIL_SEQ);
            uint32_t crc = record_crc(h + SHM_REC_HEADER_SIZE,
                                      len < avail_body ? len : (uint32_t)avail_body, SHM_F_START,
                                      seq, 0);
            uint16_t magic = SHM_REC_MAGIC;
            memcpy(h, &magic, 2);
            h[2] = SHM_RING_VERSION;
            h[3] = SHM_F_START;
            memcpy(h + 4, &len, 4);
            memcpy(h + 8, &seq, 8);
            memcpy(h + 16, &crc, 4);
            memset(h + 20, 0, 4);
        }
        uint64_t size = rec_size(len);
        uint64_t adds[] = {size, size - 8, size + 8, contig, r->cap};
        put64(reg, H_TAIL, tail + adds[below(5)]);
        break;
    }
    default: { /* a padding record anywhere, offset 0 included */
        r->forged = 1;
        uint64_t off = below(2) ? some_record(r) : 0;
        uint8_t *h = reg + SHM_RING_HEADER_SIZE + off;
        uint16_t magic = SHM_REC_MAGIC;
        uint32_t len = (uint32_t)(r->cap - off - SHM_REC_HEADER_SIZE + 8 * below(2));
        memcpy(h, &magic, 2);
        h[2] = SHM_RING_VERSION;
        h[3] = SHM_F_PAD;
        memcpy(h + 4, &len, 4);
        memset(h + 16, 0, 8);
    }
    }
}

static void run_case(ring_t *r)
{
    static const uint64_t caps[] = {256, 512, 1024, 4096};
    memset(r, 0, sizeof *r);
    r->cap = caps[below(4)];
    r->maxp = shm_ring_max_payload(r->cap);
    r->size = shm_ring_region_size(r->cap);
    r->region = calloc(1, r->size); /* exact size: ASan guards both ends */
    r->checksum = below(8) != 0;
    uint64_t start = -(8 * below(3 * r->cap / 8));
    if (shm_ring_init(r->region, r->size, r->cap, start, -below(40)))
        FAIL("init");
    int resync = (int)below(2);
    if (shm_producer_attach(&r->p, r->region, r->size, r->cap) ||
        shm_consumer_attach(&r->c, r->region, r->size, r->cap, resync))
        FAIL("attach");
    r->p.checksum = r->checksum;
    for (uint64_t i = 0, n = 1 + below(10); i < n; i++) {
        uint64_t step = below(10);
        if (step < 5)
            honest_write(r);
        else if (step < 8)
            checked_read(r);
        else if (step == 8)
            checked_consumer_misc(r);
        else
            shm_producer_prepare_wait(&r->p, (uint32_t)below(r->maxp + 1));
    }
    r->sticky = 0;
    for (uint64_t i = 0, n = below(3) ? 1 : 2 + below(3); i < n; i++)
        mutate(r);
    if (below(4) == 0) {
        /* A new consumer takes the damaged ring over. */
        shm_consumer c2;
        int rc = shm_consumer_attach(&c2, r->region, r->size, r->cap, (int)below(2));
        if (rc && rc != SHM_EHEADER && rc != SHM_EPOSITION)
            FAIL("attach returned %d", rc);
        if (!rc) {
            r->c = c2;
            r->fresh = 1;
        }
    }
    for (uint64_t i = 0, n = 1 + below(8); i < n; i++) {
        uint64_t step = below(10);
        if (step < 6)
            checked_read(r);
        else if (step < 8)
            checked_consumer_misc(r);
        else {
            checked_producer(r);
            r->sticky = 0; /* the producer may have changed what comes next */
            r->forged = 1;
        }
    }
    free(r->region);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s CASES [SEED]\n", argv[0]);
        return 2;
    }
    unsigned long long cases = strtoull(argv[1], NULL, 0);
    rng_state = (argc > 2 ? strtoull(argv[2], NULL, 0) : 1) * 0x9e3779b97f4a7c15ull | 1;
    static ring_t r;
    unsigned long long reads = 0, records = 0, errors = 0;
    for (case_no = 0; case_no < cases; case_no++) {
        run_case(&r);
        reads += r.reads;
        records += r.records;
        errors += r.errors;
    }
    printf("ok cases=%llu reads=%llu records=%llu errors=%llu\n", cases, reads, records, errors);
    return 0;
}
