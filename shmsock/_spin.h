/*
 * The binding layer's one waiting helper: watch rings for data without the
 * GIL (shmsock/_spin.c).  The ring (csrc/) keeps no waiting policy; this
 * is the mechanism of a policy that lives in Python (shmsock/_waiting.py).
 *
 * The part between the CFFI markers is read by shmsock/_ffi_build.py.
 */
#ifndef SHMSOCK_SPIN_H
#define SHMSOCK_SPIN_H

#include <stddef.h>
#include <stdint.h>

#include "shmring.h"

/* CFFI-BEGIN */

/* What shmsock_spin returns when no ring had data (a ring's index >= 0
 * means that ring has something to read, or failed a check: read it). */
#define SHMSOCK_SPIN_TIMEOUT -1   /* the time bound passed */
#define SHMSOCK_SPIN_PEER_IDLE -2 /* every peer announced that it sleeps */
#define SHMSOCK_SPIN_DOORBELL -3  /* a doorbell is readable or hung up */

/*
 * Watch the n consumers rx[i] until one has data, for at most max_ns
 * nanoseconds, with the GIL released.  Between looks it pauses the CPU,
 * and every few microseconds it yields it (sched_yield), so a peer that
 * waits for this CPU gets it.  tx[i] is the producer of the ring that
 * peer i reads, or NULL: when every tx[i] is given and every peer has
 * announced that it sleeps, no answer is on its way and the spin stops
 * (SHMSOCK_SPIN_PEER_IDLE).  fds[i] is peer i's doorbell, or -1: one that
 * is readable or hung up ends the spin (SHMSOCK_SPIN_DOORBELL), so that a
 * death or a byte is handled at once, not after the bound.  *spent_ns
 * (if not NULL) gets the time spent.
 *
 * The caller owns the consumers and must not use them from another thread
 * meanwhile (the call reloads their cached tail, as
 * shm_consumer_available does).
 */
int shmsock_spin(shm_consumer *const *rx, shm_producer *const *tx, const int *fds, size_t n,
                 uint64_t max_ns, uint64_t *spent_ns);

/* CFFI-END */

/* The same with the GIL held (for C tests and the wrapper above). */
int shmsock_spin_rings(shm_consumer *const *rx, shm_producer *const *tx, const int *fds,
                       size_t n, uint64_t max_ns, uint64_t *spent_ns);

#endif /* SHMSOCK_SPIN_H */
