/*
 * Stress test of the shmring memory model and waiter-flag protocol.
 *
 *   ring_stress MODE RECORDS [CAPACITY] [SEED]
 *
 * MODE is "threads" (two threads, one process) or "processes" (fork; the
 * ring lives in a MAP_SHARED mapping).  The producer writes RECORDS records
 * of random sizes in random batch sizes; every payload is a function of its
 * sequence number, so the consumer checks order, completeness and content
 * of every byte.  Both sides sleep for real in a blocking read() on a pipe
 * whenever the ring is empty (consumer) or full (producer), after
 * announcing it through the waiter flags; the other side writes a byte only
 * when the ring reports "wake".  A lost wake-up therefore hangs this
 * program, which the test harness turns into a failure with a timeout.
 * Random pauses on both sides make each of them sleep many times.
 *
 * Prints one line "ok records=N bytes=B consumer_sleeps=S producer_sleeps=T"
 * and exits 0, or prints the first discrepancy and exits 1.
 */
#define _GNU_SOURCE
#include "shmring.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_BATCH 32

typedef struct {
    void *region;
    size_t region_size;
    uint64_t capacity;
    uint64_t records;
    uint64_t seed;
    int data_pipe[2];  /* producer -> consumer: "there is data" */
    int space_pipe[2]; /* consumer -> producer: "there is space" */
    uint64_t sleeps;
    uint64_t bytes;
    int failed;
} ctx_t;

static uint64_t xorshift(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return *s = x;
}

static uint8_t content(uint64_t seq, uint32_t i)
{
    return (uint8_t)(seq * 131u + i * 7u + (seq >> 8));
}

static uint32_t size_of(uint64_t seq, uint64_t max_payload)
{
    /* Deterministic from seq so the consumer can check it; mostly small,
     * sometimes up to the maximum. */
    uint64_t s = seq * 0x9e3779b97f4a7c15ull + 1;
    uint64_t r = xorshift(&s);
    uint64_t limit = (r & 15) == 0 ? max_payload : (max_payload < 2048 ? max_payload : 2048);
    return (uint32_t)((r >> 8) % (limit + 1));
}

static void nap(uint64_t *rng)
{
    if ((xorshift(rng) & 1023) == 0) {
        struct timespec ts = {0, (long)(xorshift(rng) % 200000)};
        nanosleep(&ts, NULL);
    }
}

static void sleep_on(int fd)
{
    char b;
    while (read(fd, &b, 1) < 0 && errno == EINTR)
        ;
}

static void signal_to(int fd)
{
    char b = 1;
    while (write(fd, &b, 1) < 0 && errno == EINTR)
        ;
}

static void *producer(void *arg)
{
    ctx_t *ctx = arg;
    shm_producer p;
    if (shm_producer_attach(&p, ctx->region, ctx->region_size, ctx->capacity)) {
        fprintf(stderr, "producer attach failed\n");
        ctx->failed = 1;
        return NULL;
    }
    uint64_t maxp = shm_ring_max_payload(ctx->capacity);
    uint64_t rng = ctx->seed | 1;
    uint8_t *data = malloc(MAX_BATCH * maxp + 1);
    uint32_t lens[MAX_BATCH];
    uint64_t seq = 0;
    while (seq < ctx->records) {
        size_t want = 1 + xorshift(&rng) % MAX_BATCH;
        if (want > ctx->records - seq)
            want = (size_t)(ctx->records - seq);
        size_t used = 0;
        for (size_t i = 0; i < want; i++) {
            lens[i] = size_of(seq + i, maxp);
            for (uint32_t j = 0; j < lens[i]; j++)
                data[used + j] = content(seq + i, j);
            used += lens[i];
        }
        size_t done = 0, off = 0;
        while (done < want) {
            p.checksum = (int)(seq & 1);
            int64_t rc =
                shm_write(&p, data + off, used - off, lens + done, want - done, NULL, 0, 0, 0);
            if (rc >= 0) {
                size_t n = (size_t)(rc >> 1);
                for (size_t i = 0; i < n; i++)
                    off += lens[done + i];
                done += n;
                if (rc & 1)
                    signal_to(ctx->data_pipe[1]);
                continue;
            }
            if (rc != SHM_AGAIN) {
                fprintf(stderr, "producer: write error %lld\n", (long long)rc);
                ctx->failed = 1;
                return NULL;
            }
            int w = shm_producer_prepare_wait(&p, lens[done]);
            if (w == 0) {
                ctx->sleeps++;
                sleep_on(ctx->space_pipe[0]);
            }
        }
        seq += want;
        nap(&rng);
    }
    free(data);
    return NULL;
}

static void *consumer(void *arg)
{
    ctx_t *ctx = arg;
    shm_consumer c;
    if (shm_consumer_attach(&c, ctx->region, ctx->region_size, ctx->capacity, 0)) {
        fprintf(stderr, "consumer attach failed\n");
        ctx->failed = 1;
        return NULL;
    }
    uint64_t maxp = shm_ring_max_payload(ctx->capacity);
    uint64_t rng = (ctx->seed * 3) | 1;
    size_t out_cap = (size_t)ctx->capacity;
    uint8_t *out = malloc(out_cap);
    uint32_t lens[MAX_BATCH];
    uint8_t flags[MAX_BATCH];
    uint64_t seq = 0;
    while (seq < ctx->records) {
        size_t max = 1 + xorshift(&rng) % MAX_BATCH;
        int64_t rc = shm_read(&c, out, out_cap, lens, flags, NULL, max);
        if (rc < 0) {
            fprintf(stderr, "consumer: read error %lld at seq %llu\n", (long long)rc,
                    (unsigned long long)seq);
            ctx->failed = 1;
            return NULL;
        }
        size_t n = (size_t)(rc >> 3);
        if (rc & 1)
            signal_to(ctx->space_pipe[1]);
        if (n == 0) {
            if (shm_consumer_prepare_wait(&c) == 0) {
                ctx->sleeps++;
                sleep_on(ctx->data_pipe[0]);
            }
            continue;
        }
        size_t off = 0;
        for (size_t i = 0; i < n; i++, seq++) {
            uint32_t expect = size_of(seq, maxp);
            if (lens[i] != expect || flags[i] != SHM_F_START) {
                fprintf(stderr, "consumer: seq %llu has len %u flags %u, expected %u\n",
                        (unsigned long long)seq, lens[i], flags[i], expect);
                ctx->failed = 1;
                return NULL;
            }
            for (uint32_t j = 0; j < lens[i]; j++) {
                if (out[off + j] != content(seq, j)) {
                    fprintf(stderr, "consumer: seq %llu byte %u corrupt\n",
                            (unsigned long long)seq, j);
                    ctx->failed = 1;
                    return NULL;
                }
            }
            off += lens[i];
            ctx->bytes += lens[i];
        }
        nap(&rng);
    }
    free(out);
    return NULL;
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: %s threads|processes RECORDS [CAPACITY] [SEED]\n", argv[0]);
        return 2;
    }
    ctx_t ctx;
    memset(&ctx, 0, sizeof ctx);
    ctx.records = strtoull(argv[2], NULL, 0);
    ctx.capacity = argc > 3 ? strtoull(argv[3], NULL, 0) : 65536;
    ctx.seed = argc > 4 ? strtoull(argv[4], NULL, 0) : 12345;
    ctx.region_size = shm_ring_region_size(ctx.capacity);
    if (!ctx.region_size) {
        fprintf(stderr, "bad capacity\n");
        return 2;
    }
    ctx.region = mmap(NULL, ctx.region_size, PROT_READ | PROT_WRITE,
                      MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (ctx.region == MAP_FAILED || pipe(ctx.data_pipe) || pipe(ctx.space_pipe)) {
        perror("setup");
        return 2;
    }
    /* Start near the top of the counters so they wrap during the run. */
    uint64_t start = UINT64_MAX - 8 * ctx.capacity + 1 - 7;
    if (shm_ring_init(ctx.region, ctx.region_size, ctx.capacity, start & ~7ull, 0)) {
        fprintf(stderr, "init failed\n");
        return 2;
    }

    uint64_t consumer_sleeps, producer_sleeps;
    if (strcmp(argv[1], "threads") == 0) {
        ctx_t pctx = ctx;
        pthread_t tp, tc;
        pthread_create(&tp, NULL, producer, &pctx);
        pthread_create(&tc, NULL, consumer, &ctx);
        pthread_join(tp, NULL);
        pthread_join(tc, NULL);
        if (pctx.failed)
            ctx.failed = 1;
        consumer_sleeps = ctx.sleeps;
        producer_sleeps = pctx.sleeps;
    } else if (strcmp(argv[1], "processes") == 0) {
        int report[2];
        if (pipe(report))
            return 2;
        pid_t pid = fork();
        if (pid == 0) {
            producer(&ctx);
            ssize_t w = write(report[1], &ctx.sleeps, sizeof ctx.sleeps);
            _exit(ctx.failed || w != (ssize_t)sizeof ctx.sleeps);
        }
        consumer(&ctx);
        int status = 0;
        waitpid(pid, &status, 0);
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0 ||
            read(report[0], &producer_sleeps, sizeof producer_sleeps) != sizeof producer_sleeps)
            ctx.failed = 1;
        consumer_sleeps = ctx.sleeps;
    } else {
        fprintf(stderr, "unknown mode %s\n", argv[1]);
        return 2;
    }
    if (ctx.failed)
        return 1;
    printf("ok records=%llu bytes=%llu consumer_sleeps=%llu producer_sleeps=%llu\n",
           (unsigned long long)ctx.records, (unsigned long long)ctx.bytes,
           (unsigned long long)consumer_sleeps, (unsigned long long)producer_sleeps);
    return 0;
}
