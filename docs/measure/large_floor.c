/*
 * The floor of a large PUSH -> PULL over shared memory: the bare mechanism
 * of shmsock's bulk region with nothing around it (issue 22).
 *
 *     cc -std=c11 -O2 -march=native -Wall -Wextra -o floor large_floor.c
 *     ./floor SLOTS CHUNK_KIB NT POOL COUNT      e.g. ./floor 2 16384 0 4 800
 *
 * Two processes share a region of SLOTS slots of 16 MiB.  The sender copies
 * each message from a pool of POOL distinct 16 MiB messages (as the bench's
 * senders do) into the next slot and publishes it; the receiver copies each
 * slot into one private 16 MiB buffer (as recv() copies into a new bytes
 * object) and releases it.  Both wait by spinning on two shared counters, so
 * no wake-up, no checksum, no interpreter and no socket costs anything:
 * what is left is the two copies and the traffic between the cores.
 * CHUNK_KIB below 16384 publishes each message in pieces, so the receiver
 * copies a piece while the sender writes the next (pipelining); NT 1 writes
 * the slots with non-temporal stores.  Prints messages per second.
 */
#define _GNU_SOURCE
#include <emmintrin.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MSG ((size_t)16 << 20)

struct counters {
    _Alignas(64) _Atomic uint64_t written; /* pieces published by the sender */
    _Alignas(64) _Atomic uint64_t read;    /* pieces released by the receiver */
};

static double seconds(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static void copy_nt(char *dst, const char *src, size_t n)
{
    for (size_t i = 0; i < n; i += 16)
        _mm_stream_si128((__m128i *)(void *)(dst + i),
                         _mm_loadu_si128((const __m128i *)(const void *)(src + i)));
    _mm_sfence();
}

int main(int argc, char **argv)
{
    if (argc != 6) {
        fprintf(stderr, "usage: %s SLOTS CHUNK_KIB NT POOL COUNT\n", argv[0]);
        return 2;
    }
    uint64_t slots = strtoull(argv[1], NULL, 10);
    size_t chunk = (size_t)strtoull(argv[2], NULL, 10) << 10;
    int nt = atoi(argv[3]);
    size_t pool_n = strtoull(argv[4], NULL, 10);
    uint64_t count = strtoull(argv[5], NULL, 10);
    if (slots < 1 || chunk == 0 || MSG % chunk || pool_n < 1 || count < 1) {
        fprintf(stderr, "bad arguments\n");
        return 2;
    }
    uint64_t per = MSG / chunk, total = count * per, pieces = slots * per;

    struct counters *c = mmap(NULL, sizeof *c, PROT_READ | PROT_WRITE,
                              MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    char *region = mmap(NULL, slots * MSG, PROT_READ | PROT_WRITE,
                        MAP_SHARED | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
    if (c == MAP_FAILED || region == MAP_FAILED) {
        perror("mmap");
        return 1;
    }
    memset(region, 1, slots * MSG);

    pid_t child = fork();
    if (child < 0) {
        perror("fork");
        return 1;
    }
    if (child == 0) { /* the receiver */
        char *dst = malloc(MSG);
        if (!dst)
            _exit(1);
        memset(dst, 0, MSG);
        for (uint64_t r = 0; r < total;) {
            uint64_t w;
            while ((w = atomic_load_explicit(&c->written, memory_order_acquire)) == r)
                _mm_pause();
            for (; r < w; r++) {
                memcpy(dst + (r % per) * chunk, region + (r % pieces) * chunk, chunk);
                atomic_store_explicit(&c->read, r + 1, memory_order_release);
            }
        }
        _exit(dst[0] == 42); /* keeps the copies */
    }

    char *pool = malloc(pool_n * MSG);
    if (!pool)
        return 1;
    for (size_t i = 0; i + 8 <= pool_n * MSG; i += 8) {
        uint64_t v = i * 2654435761u;
        memcpy(pool + i, &v, 8);
    }
    double t0 = seconds();
    for (uint64_t w = 0; w < total; w++) {
        while (w - atomic_load_explicit(&c->read, memory_order_acquire) >= pieces)
            _mm_pause();
        char *to = region + (w % pieces) * chunk;
        const char *from = pool + ((w / per) % pool_n) * MSG + (w % per) * chunk;
        if (nt)
            copy_nt(to, from, chunk);
        else
            memcpy(to, from, chunk);
        atomic_store_explicit(&c->written, w + 1, memory_order_release);
    }
    while (atomic_load_explicit(&c->read, memory_order_acquire) < total)
        _mm_pause();
    double dt = seconds() - t0;
    waitpid(child, NULL, 0);
    printf("%.1f\n", (double)count / dt);
    return 0;
}
