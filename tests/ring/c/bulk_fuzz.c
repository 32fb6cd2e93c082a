/*
 * Fuzz driver for the bulk regions of the C core: hostile descriptors at
 * C speed.
 *
 *   bulk_fuzz CASES [SEED]
 *
 * Each case formats a ring and a bulk region in buffers of their exact
 * sizes (so AddressSanitizer sees any access past them), gives them an
 * honest history (extents of every size put and published through the
 * ring as DESC records, accepted, held as leases or released at once, in
 * any order, regions replaced by larger ones, checksums on and off, the
 * writer announcing waits), then attacks: descriptors forged from honest
 * ones (positions out of bounds, out of order or over held extents,
 * lengths, generations, flags, random bits), the shared words forged
 * (bulk_released, bulk_want, bulk_waiting), frame bytes changed after
 * they were checksummed.
 *
 * Checked on every call:
 *   - the return value is one the header documents;
 *   - an accepted extent lies inside the data area of its region and
 *     overlaps no extent the reader still holds; a refused descriptor
 *     changes nothing in the reader's state;
 *   - an honest, undamaged extent has the bytes written and passes
 *     shm_bulk_verify; a checksummed one whose bytes changed fails it;
 *   - the reader writes nothing in the ring header but bulk_released,
 *     bulk_read and bulk_waiting; the writer nothing but its own line,
 *     bulk_waiting and bulk_want, and in the region nothing outside the
 *     data area.
 *
 * Prints "ok cases=N accepted=A refused=R crc=C" and exits 0, or prints
 * the case number and the first violation and exits 1.
 */
#include "shmring.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_HELD 64
#define MAX_GEN 4

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

/* Ring header words, from docs/protocol.md. */
enum { H_BULK_RELEASED = 160, H_BULK_READ = 168, H_BULK_WAITING = 200, H_BULK_WANT = 208 };

typedef struct {
    uint64_t pos, len, crc;
    uint32_t gen, flags, reserved;
} desc_v;

static void pack(uint8_t *d, const desc_v *v)
{
    uint32_t crc = (uint32_t)v->crc;
    memcpy(d, &v->pos, 8);
    memcpy(d + 8, &v->len, 8);
    memcpy(d + 16, &crc, 4);
    memcpy(d + 20, &v->gen, 4);
    memcpy(d + 24, &v->flags, 4);
    memcpy(d + 28, &v->reserved, 4);
}

static void unpack(const uint8_t *d, desc_v *v)
{
    uint32_t crc;
    memcpy(&v->pos, d, 8);
    memcpy(&v->len, d + 8, 8);
    memcpy(&crc, d + 16, 4);
    v->crc = crc;
    memcpy(&v->gen, d + 20, 4);
    memcpy(&v->flags, d + 24, 4);
    memcpy(&v->reserved, d + 28, 4);
}

typedef struct {
    uint64_t pos, len, end;
    int released;
} held_t;

typedef struct {
    uint8_t *ring;
    size_t ring_size;
    shm_producer p;
    shm_consumer c;
    uint8_t *regions[MAX_GEN + 1]; /* by generation */
    uint64_t caps[MAX_GEN + 1];
    shm_bulk_writer w;
    shm_bulk_reader r;
    int have_reader;
    int lied;               /* a forgery was accepted, or the shared words forged */
    uint32_t gen;           /* the writer's */
    held_t held[MAX_HELD];  /* accepted, in order; released ones until the prefix goes */
    size_t nheld;
    unsigned long long accepted, refused, crc;
} scene_t;

static uint8_t byte_of(uint64_t pos, uint64_t i)
{
    return (uint8_t)(pos * 131u + i * 7u + (pos >> 9));
}

static void only_changed(const uint8_t *before, const uint8_t *after, size_t n,
                         const size_t (*ok)[2], size_t nok, const char *who)
{
    if (!memcmp(before, after, n))
        return;
    for (size_t i = 0; i < n; i++) {
        if (before[i] == after[i])
            continue;
        int allowed = 0;
        for (size_t k = 0; k < nok; k++)
            allowed |= i >= ok[k][0] && i < ok[k][1];
        if (!allowed)
            FAIL("%s wrote byte %zu", who, i);
    }
}

static const size_t reader_words[][2] = {{H_BULK_RELEASED, H_BULK_READ + 8},
                                          {H_BULK_WAITING, H_BULK_WAITING + 4}};
static const size_t writer_words[][2] = {{64, 128}, {H_BULK_WAITING, H_BULK_WANT + 8}};

static void grow(scene_t *s)
{
    uint64_t cap = s->gen ? s->caps[s->gen] * 2 : (uint64_t[]){4096, 8192, 65536}[below(3)];
    uint32_t gen = ++s->gen;
    size_t size = (size_t)shm_bulk_region_size(cap);
    s->regions[gen] = calloc(1, size); /* exact size: ASan guards both ends */
    s->caps[gen] = cap;
    if (shm_bulk_init(s->regions[gen], size, cap, gen, 1))
        FAIL("init region");
    shm_bulk_writer prev = s->w;
    if (shm_bulk_writer_attach(&s->w, &s->p, s->regions[gen], size, cap, gen > 1 ? &prev : NULL))
        FAIL("writer attach");
}

static int switch_reader(scene_t *s, uint32_t gen, int resync)
{
    if (gen == 0 || gen > s->gen || !s->regions[gen])
        return 0;
    uint64_t cap;
    uint32_t g;
    size_t size = (size_t)shm_bulk_region_size(s->caps[gen]);
    if (shm_bulk_check(s->regions[gen], size, size, SHM_BULK_MAX_CAPACITY, &cap, &g) || g != gen)
        FAIL("check region");
    shm_bulk_reader prev = s->r;
    int rc = shm_bulk_reader_attach(&s->r, &s->c, cap, gen, s->have_reader ? &prev : NULL, resync);
    if (rc) {
        if (s->have_reader && gen <= prev.gen && rc == SHM_EINVAL) {
            s->r = prev;
            return 0;
        }
        FAIL("reader attach %d", rc);
    }
    s->have_reader = 1;
    return 1;
}

/* Judges `d` as BulkIn does; returns 1 when accepted (then held). */
static int accept(scene_t *s, const uint8_t *d, int honest, int scribbled)
{
    desc_v v;
    unpack(d, &v);
    if (!s->have_reader && !switch_reader(s, v.gen, (int)below(4) == 0))
        return 0;
    uint8_t *before = malloc(s->ring_size);
    memcpy(before, s->ring, s->ring_size);
    shm_bulk_reader saved = s->r;
    int rc = shm_bulk_accept(&s->r, d);
    if (rc == SHM_ENEWREGION) {
        if (s->r.want_gen <= saved.gen || s->r.want_gen != v.gen)
            FAIL("new region %u from region %u", s->r.want_gen, saved.gen);
        if (switch_reader(s, v.gen, 0)) {
            saved = s->r;
            rc = shm_bulk_accept(&s->r, d);
        }
    }
    only_changed(before, s->ring, s->ring_size, reader_words, 2, "accept");
    free(before);
    if (rc != 0) {
        if (rc != SHM_EEXTENT && rc != SHM_ENEWREGION)
            FAIL("accept returned %d", rc);
        if (rc == SHM_EEXTENT && memcmp(&saved, &s->r, offsetof(shm_bulk_reader, want_gen)))
            FAIL("a refused descriptor changed the reader");
        if (honest && !s->lied)
            FAIL("an honest descriptor was refused (%d)", rc);
        s->refused++;
        return 0;
    }
    uint64_t cap = s->r.capacity;
    if (s->r.len == 0 || s->r.len > cap / 2 || s->r.offset < SHM_BULK_HEADER_SIZE ||
        s->r.offset + s->r.len > SHM_BULK_HEADER_SIZE + cap)
        FAIL("accepted an extent outside the region");
    for (size_t i = 0; i < s->nheld; i++) {
        const held_t *h = &s->held[i];
        if (h->released)
            continue;
        if (h->pos - s->r.pos < s->r.len || s->r.pos - h->pos < h->len)
            FAIL("accepted an extent over a held one");
    }
    const uint8_t *data = s->regions[s->r.gen] + s->r.offset;
    int vrc = shm_bulk_verify(data, s->r.len, s->r.crc, s->r.checked);
    if (vrc != 0 && vrc != SHM_EBULKCRC)
        FAIL("verify returned %d", vrc);
    if (!honest)
        s->lied = 1; /* the reader now expects what the forger said */
    if (honest && !scribbled && !s->lied) {
        if (vrc)
            FAIL("an honest extent fails its checksum");
        for (uint64_t i = 0; i < s->r.len; i += 1 + s->r.len / 17)
            if (data[i] != byte_of(s->r.pos, i))
                FAIL("an honest extent has other bytes");
    }
    if (honest && scribbled && s->r.checked) {
        if (!vrc)
            FAIL("changed bytes pass the checksum");
        s->crc++;
    }
    if (s->nheld == MAX_HELD)
        FAIL("held table full");
    s->held[s->nheld++] = (held_t){s->r.pos, s->r.len, s->r.expect, 0};
    s->accepted++;
    return 1;
}

static void release(scene_t *s, size_t i)
{
    if (i >= s->nheld || s->held[i].released)
        return;
    s->held[i].released = 1;
    size_t k = 0;
    uint64_t upto = 0;
    while (k < s->nheld && s->held[k].released)
        upto = s->held[k++].end;
    if (!k)
        return;
    memmove(s->held, s->held + k, (s->nheld - k) * sizeof *s->held);
    s->nheld -= k;
    uint8_t *before = malloc(s->ring_size);
    memcpy(before, s->ring, s->ring_size);
    int rc = shm_bulk_release(&s->r, upto);
    if (rc != 0 && rc != 1)
        FAIL("release returned %d", rc);
    only_changed(before, s->ring, s->ring_size, reader_words, 2, "release");
    free(before);
}

/* Put an honest extent, publish its record, read it back; returns 1 if done. */
static int honest(scene_t *s, int hostile_words)
{
    uint64_t cap = s->w.capacity;
    uint64_t lens[] = {1, 63, 64, 65, cap / 2, 1 + below(cap / 2)};
    uint64_t len = lens[below(6)];
    uint8_t *src = malloc(len);
    uint8_t d[SHM_DESC_SIZE];
    int checksum = below(5) != 0;
    uint8_t *before = malloc(s->ring_size);
    memcpy(before, s->ring, s->ring_size);
    uint8_t *region = s->regions[s->gen];
    uint8_t head[SHM_BULK_HEADER_SIZE];
    memcpy(head, region, sizeof head);
    /* The bytes depend on the position, which is known only once allocated:
     * allocate, fill in place, seal (a loan), or put from a private copy. */
    uint64_t tail0 = s->w.tail;
    int64_t off;
    if (below(2)) {
        off = shm_bulk_alloc(&s->w, len, d);
        if (off >= 0) {
            desc_v v;
            unpack(d, &v);
            for (uint64_t i = 0; i < len; i++)
                region[off + (int64_t)i] = byte_of(v.pos, i);
            if (shm_bulk_seal(&s->w, d, checksum))
                FAIL("seal refused its own extent");
        }
    } else {
        uint64_t tail = s->w.tail, o = tail & s->w.mask;
        uint64_t pos = o + len <= cap ? tail : tail + (cap - o);
        for (uint64_t i = 0; i < len; i++)
            src[i] = byte_of(pos, i);
        off = shm_bulk_put(&s->w, src, len, checksum, d);
        if (off >= 0) {
            desc_v v;
            unpack(d, &v);
            if (v.pos != pos)
                FAIL("put placed the extent elsewhere than the allocation rule");
        }
    }
    free(src);
    only_changed(before, s->ring, s->ring_size, writer_words, 2, "the writer");
    if (memcmp(head, region, sizeof head))
        FAIL("the writer wrote in its region's header");
    free(before);
    if (off == SHM_AGAIN || (off == SHM_EPOSITION && hostile_words))
        return 0;
    if (off < 0)
        FAIL("put/alloc returned %lld", (long long)off);
    uint32_t rlen = SHM_DESC_SIZE;
    uint8_t fl = SHM_F_START | SHM_F_DESC;
    int64_t wrc = shm_write(&s->p, d, sizeof d, &rlen, 1, &fl, 0, 1, 0);
    if (wrc == SHM_AGAIN) {
        /* The record cannot be published: the extent is taken back. */
        if (shm_bulk_rewind(&s->w, tail0))
            FAIL("rewind refused");
        return 0;
    }
    if (wrc < 0)
        FAIL("ring write returned %lld", (long long)wrc);
    uint8_t out[SHM_DESC_SIZE];
    uint32_t olen;
    uint8_t oflags;
    int64_t rrc = shm_read(&s->c, out, sizeof out, &olen, &oflags, NULL, 1);
    if (rrc >> 3 != 1 || oflags != fl || memcmp(out, d, sizeof d))
        FAIL("the DESC record did not come back as written");
    int scribble = below(10) == 0;
    if (scribble) {
        desc_v v;
        unpack(d, &v);
        region[SHM_BULK_HEADER_SIZE + (v.pos & s->w.mask) + below(len)] ^= (uint8_t)(1 + below(255));
    }
    if (!accept(s, out, 1, scribble))
        return 0;
    if (below(3))
        release(s, s->nheld - 1);
    return 1;
}

static uint64_t interesting(uint64_t old, uint64_t cap)
{
    switch (below(9)) {
    case 0: return 0;
    case 1: return ~0ull;
    case 2: return old ^ (1ull << below(64));
    case 3: return old + (below(2) ? 64 : -64ull) * (1 + below(3));
    case 4: return old + (below(2) ? cap : -cap) / (1 + below(4));
    case 5: return old + (1ull << 63);
    case 6: return old + 1 + below(63);
    default: return rnd();
    }
}

static void forge(scene_t *s)
{
    desc_v v = {s->have_reader ? s->r.expect : s->w.tail, 1 + below(s->w.capacity / 2), 0,
                s->gen, 0, 0};
    if (s->nheld && below(3) == 0)
        v.pos = s->held[below(s->nheld)].pos + 64 * below(4);
    switch (below(8)) {
    case 0: v.pos = interesting(v.pos, s->w.capacity); break;
    case 1: v.len = interesting(v.len, s->w.capacity); break;
    case 2: v.gen = (uint32_t)interesting(v.gen, 4); break;
    case 3: v.flags = (uint32_t)rnd(); v.crc = below(2) ? 0 : rnd(); break;
    case 4: v.reserved = (uint32_t)(1 + below(9)); break;
    case 5: {
        uint8_t d[SHM_DESC_SIZE];
        for (size_t i = 0; i < sizeof d; i++)
            d[i] = (uint8_t)rnd();
        accept(s, d, 0, 0);
        return;
    }
    default:
        v.pos = interesting(v.pos, s->w.capacity);
        v.len = interesting(v.len, s->w.capacity);
    }
    uint8_t d[SHM_DESC_SIZE];
    pack(d, &v);
    accept(s, d, 0, 0);
}

static void forge_words(scene_t *s)
{
    uint64_t v;
    switch (below(3)) {
    case 0:
        memcpy(&v, s->ring + H_BULK_RELEASED, 8);
        v = interesting(v, s->w.capacity);
        memcpy(s->ring + H_BULK_RELEASED, &v, 8);
        break;
    case 1:
        memcpy(&v, s->ring + H_BULK_WANT, 8);
        v = interesting(v, s->w.capacity);
        memcpy(s->ring + H_BULK_WANT, &v, 8);
        break;
    default: {
        uint32_t w = (uint32_t)rnd();
        memcpy(s->ring + H_BULK_WAITING, &w, 4);
    }
    }
}

static void writer_misc(scene_t *s, int hostile)
{
    uint8_t *before = malloc(s->ring_size);
    memcpy(before, s->ring, s->ring_size);
    uint64_t len = below(s->w.capacity / 2 + 2);
    int64_t rc;
    switch (below(3)) {
    case 0:
        rc = shm_bulk_prepare_wait(&s->w, len);
        if (rc != 0 && rc != 1 && rc != SHM_ETOOBIG && rc != SHM_EINVAL &&
            !(rc == SHM_EPOSITION && hostile))
            FAIL("prepare_wait returned %lld", (long long)rc);
        break;
    case 1:
        rc = shm_bulk_unreleased(&s->w);
        if (rc < 0 && !(rc == SHM_EPOSITION && hostile))
            FAIL("unreleased returned %lld", (long long)rc);
        break;
    default:
        shm_bulk_cancel_wait(&s->w);
    }
    only_changed(before, s->ring, s->ring_size, writer_words, 2, "the writer");
    free(before);
}

static void run_case(scene_t *s)
{
    memset(s, 0, sizeof *s);
    s->ring_size = shm_ring_region_size(4096);
    s->ring = calloc(1, s->ring_size);
    uint64_t start = below(2) ? -(64 * below(300)) : 8 * below(1u << 20);
    if (shm_ring_init(s->ring, s->ring_size, 4096, start, 0))
        FAIL("ring init");
    if (shm_producer_attach(&s->p, s->ring, s->ring_size, 4096) ||
        shm_consumer_attach(&s->c, s->ring, s->ring_size, 4096, 0))
        FAIL("ring attach");
    grow(s);
    for (uint64_t i = 0, n = 1 + below(30); i < n; i++) {
        uint64_t step = below(12);
        if (step < 7)
            honest(s, 0);
        else if (step < 9 && s->nheld)
            release(s, below(s->nheld));
        else if (step == 9 && s->gen < MAX_GEN)
            grow(s);
        else
            writer_misc(s, 0);
    }
    for (uint64_t i = 0, n = 1 + below(6); i < n; i++) {
        uint64_t step = below(10);
        if (step < 6) {
            forge(s);
        } else if (step < 8) {
            forge_words(s);
            s->lied = 1;
            honest(s, 1);
            writer_misc(s, 1);
            break; /* the writer's view of the reader is now anything */
        } else if (s->nheld) {
            release(s, below(s->nheld));
        }
    }
    free(s->ring);
    for (uint32_t g = 1; g <= s->gen; g++)
        free(s->regions[g]);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s CASES [SEED]\n", argv[0]);
        return 2;
    }
    unsigned long long cases = strtoull(argv[1], NULL, 0);
    rng_state = (argc > 2 ? strtoull(argv[2], NULL, 0) : 1) * 0x9e3779b97f4a7c15ull | 1;
    static scene_t s;
    unsigned long long accepted = 0, refused = 0, crc = 0;
    for (case_no = 0; case_no < cases; case_no++) {
        run_case(&s);
        accepted += s.accepted;
        refused += s.refused;
        crc += s.crc;
    }
    printf("ok cases=%llu accepted=%llu refused=%llu crc=%llu\n", cases, accepted, refused, crc);
    return 0;
}
