/*
 * _spin.c: watching rings for data, bounded, for the binding layer.
 *
 * Why here and not in csrc/: the ring has no waiting policy (csrc/shmring.c,
 * rule 5).  How long to spin and when not to is decided in Python
 * (shmsock/_waiting.py); this is only the loop, in C so that it can run
 * without the GIL and without a Python frame per look.  It is linked into
 * the same extension module as the ring (shmsock/_ffi_build.py, which also
 * releases the GIL around it) and calls only the ring's public functions.
 *
 * Rules:
 *  1. Bounded: the clock is read every few looks, and the call returns
 *     once max_ns has passed, whatever the rings do.
 *  2. Never holds a CPU a peer needs: a pause instruction between looks,
 *     and sched_yield every YIELD_NS, so that a peer queued behind us on
 *     this CPU runs.
 *  3. Stops as soon as waiting longer cannot pay: every peer has announced
 *     that it sleeps (no answer is coming), or a doorbell has news (a byte,
 *     a hang-up: a peer that died is seen within POLL_NS, not at the bound).
 */
#define _GNU_SOURCE
#include "_spin.h"

#include <poll.h>
#include <sched.h>
#include <time.h>

#define YIELD_NS 2000u  /* sched_yield at least this often */
#define POLL_NS 20000u  /* look at the doorbells at least this often */
#define CLOCK_EVERY 8u  /* looks between clock reads */
#define MAX_FDS 64u     /* doorbells looked at; more are left to the bound */

static inline uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

static int peers_idle(shm_producer *const *tx, size_t n)
{
    if (!tx)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!tx[i] || !shm_producer_peer_waiting(tx[i]))
            return 0;
    return 1;
}

static int doorbell_news(const int *fds, size_t n)
{
    struct pollfd p[MAX_FDS];
    nfds_t m = 0;
    if (!fds)
        return 0;
    for (size_t i = 0; i < n && m < MAX_FDS; i++) {
        if (fds[i] >= 0) {
            p[m].fd = fds[i];
            p[m].events = POLLIN | POLLRDHUP;
            p[m].revents = 0;
            m++;
        }
    }
    return m && poll(p, m, 0) > 0;
}

int shmsock_spin_rings(shm_consumer *const *rx, shm_producer *const *tx, const int *fds,
                       size_t n, uint64_t max_ns, uint64_t *spent_ns)
{
    const uint64_t start = now_ns();
    uint64_t last_yield = start, last_poll = start, t = start;
    int rc = SHMSOCK_SPIN_TIMEOUT;
    for (unsigned looks = 0;; looks++) {
        for (size_t i = 0; i < n; i++) {
            /* Anything but "empty" (data, or a position to report) is the
             * caller's to read. */
            if (shm_consumer_available(rx[i]) != 0) {
                rc = (int)i;
                goto done;
            }
        }
        if (looks % CLOCK_EVERY) {
            cpu_relax();
            continue;
        }
        t = now_ns();
        if (t - start >= max_ns)
            break;
        if (peers_idle(tx, n)) {
            rc = SHMSOCK_SPIN_PEER_IDLE;
            goto done;
        }
        if (t - last_poll >= POLL_NS) {
            last_poll = t;
            if (doorbell_news(fds, n)) {
                rc = SHMSOCK_SPIN_DOORBELL;
                goto done;
            }
        }
        if (t - last_yield >= YIELD_NS) {
            last_yield = t;
            sched_yield();
        } else {
            cpu_relax();
        }
    }
done:
    if (spent_ns)
        *spent_ns = now_ns() - start;
    return rc;
}
