#include "ckernels.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <time.h>

// Worker threads that stay awake between the short parallel steps of an encoder pass.
//
// Why: one short query runs ~25 parallel steps (four a layer) of 20–100 µs each. Handing
// each to a sleeping thread (libdispatch's `concurrentPerform`) costs a futex wake-up of
// about that much on a VM, so a second core gained nothing one query at a time. Here a
// worker that has just finished a step spins for a while (SPIN_NS) watching for the next
// one before it sleeps, yielding its core every few pauses to any other thread that wants
// it (in a server, the next request's pass). The caller takes indices too, from the same
// counter: when no worker is awake it runs every index itself, never waiting for a
// wake-up.
//
// One job at a time: `run` claims the pool with a flag, and a caller that finds it taken
// (another thread's job, or a job started from inside a job) is told so and runs its
// work some other way. A job is published through one 64-bit word, `ticket`: the job's
// number in the high half and the next index to hand out in the low half, so that a
// worker still finishing job n can never take an index of job n + 1 (its compare-and-swap
// sees the number change). The caller first closes the ticket (the new number, index
// CLOSED), then writes the job's fields, then opens it (index 0); a worker reads the
// fields between two reads of an open ticket of the same number, as a seqlock's reader
// does, so it never runs one job's body with another's count or context.

enum { SPIN_NS = 100 * 1000, MAX_WORKERS = 255 };
static const uint32_t CLOSED = UINT32_MAX;  // a ticket's index while its job is written

typedef void body_t(void *context, int index);

static struct {
  _Atomic uint64_t ticket;  // job number << 32 | next index
  _Atomic int count;        // the current job's indices
  _Atomic int done;         // indices of the current job finished
  _Atomic(body_t *) body;
  _Atomic(void *) context;
  atomic_flag busy;         // a caller owns the pool
  _Atomic int sleepers;     // workers waiting on `wake`
  pthread_mutex_t lock;
  pthread_cond_t wake;
  int workers;              // started once; -1: could not start any
} pool = {.busy = ATOMIC_FLAG_INIT,
          .lock = PTHREAD_MUTEX_INITIALIZER,
          .wake = PTHREAD_COND_INITIALIZER};

static inline void pause_briefly(void) {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  __asm__ volatile("yield");
#endif
}

static inline uint64_t now_ns(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

static inline uint32_t job_of(uint64_t ticket) { return (uint32_t)(ticket >> 32); }
static inline uint32_t index_of(uint64_t ticket) { return (uint32_t)ticket; }
static inline int is_open(uint64_t ticket, uint32_t job) {
  return job_of(ticket) == job && index_of(ticket) != CLOSED;
}

// Takes and runs indices of job `job` until none is left or another job has begun.
static void take_indices(uint32_t job) {
  uint64_t ticket = atomic_load_explicit(&pool.ticket, memory_order_acquire);
  if (!is_open(ticket, job)) return;
  body_t *body = atomic_load_explicit(&pool.body, memory_order_relaxed);
  void *context = atomic_load_explicit(&pool.context, memory_order_relaxed);
  const int count = atomic_load_explicit(&pool.count, memory_order_relaxed);
  atomic_thread_fence(memory_order_acquire);
  ticket = atomic_load_explicit(&pool.ticket, memory_order_relaxed);
  for (;;) {
    if (!is_open(ticket, job) || index_of(ticket) >= (uint32_t)count) return;
    if (!atomic_compare_exchange_weak_explicit(&pool.ticket, &ticket, ticket + 1,
                                               memory_order_acq_rel, memory_order_relaxed))
      continue;
    body(context, (int)index_of(ticket));
    atomic_fetch_add_explicit(&pool.done, 1, memory_order_release);
    ticket = atomic_load_explicit(&pool.ticket, memory_order_relaxed);
  }
}

// A job other than `seen` is open.
static inline int new_job(uint32_t seen, uint32_t *job) {
  const uint64_t ticket = atomic_load(&pool.ticket);
  *job = job_of(ticket);
  return *job != seen && index_of(ticket) != CLOSED;
}

static void *worker_main(void *unused) {
  (void)unused;
  uint32_t seen = job_of(atomic_load(&pool.ticket)), job;
  for (;;) {
    // Spin for the next job, then sleep until one is opened.
    const uint64_t until = now_ns() + SPIN_NS;
    for (int i = 0; !new_job(seen, &job); i++) {
      pause_briefly();
      if ((i & 63) != 63) continue;
      sched_yield();  // a thread waiting for this core (another request's) runs first
      if (now_ns() > until) {
        pthread_mutex_lock(&pool.lock);
        atomic_fetch_add(&pool.sleepers, 1);
        while (!new_job(seen, &job)) pthread_cond_wait(&pool.wake, &pool.lock);
        atomic_fetch_sub(&pool.sleepers, 1);
        pthread_mutex_unlock(&pool.lock);
        break;
      }
    }
    seen = job;
    take_indices(job);  // returns at once when the job has already moved on
  }
  return NULL;
}

// Starts `workers` threads on first use; later calls keep the first number.
static int started_workers(int workers) {
  static pthread_mutex_t start = PTHREAD_MUTEX_INITIALIZER;
  static _Atomic int started = 0;
  if (atomic_load_explicit(&started, memory_order_acquire)) return pool.workers;
  pthread_mutex_lock(&start);
  if (!atomic_load_explicit(&started, memory_order_relaxed)) {
    int n = 0;
    workers = workers < MAX_WORKERS ? workers : MAX_WORKERS;
    pthread_attr_t attributes;
    pthread_attr_init(&attributes);
    pthread_attr_setdetachstate(&attributes, PTHREAD_CREATE_DETACHED);
    for (; n < workers; n++) {
      pthread_t thread;
      if (pthread_create(&thread, &attributes, worker_main, NULL) != 0) break;
    }
    pthread_attr_destroy(&attributes);
    pool.workers = n > 0 ? n : -1;
    atomic_store_explicit(&started, 1, memory_order_release);
  }
  pthread_mutex_unlock(&start);
  return pool.workers;
}

int vdb_workers_run(int count, int workers, void (*body)(void *context, int index),
                    void *context) {
  if (count <= 0) return 1;
  if (workers <= 0 || started_workers(workers) <= 0) return 0;
  if (atomic_flag_test_and_set_explicit(&pool.busy, memory_order_acquire)) return 0;
  const uint32_t job = job_of(atomic_load(&pool.ticket)) + 1;
  atomic_store(&pool.ticket, (uint64_t)job << 32 | CLOSED);
  atomic_thread_fence(memory_order_release);
  atomic_store_explicit(&pool.body, body, memory_order_relaxed);
  atomic_store_explicit(&pool.context, context, memory_order_relaxed);
  atomic_store_explicit(&pool.count, count, memory_order_relaxed);
  atomic_store_explicit(&pool.done, 0, memory_order_relaxed);
  atomic_store(&pool.ticket, (uint64_t)job << 32);  // opens it: index 0
  if (atomic_load(&pool.sleepers) > 0) {
    pthread_mutex_lock(&pool.lock);
    pthread_cond_broadcast(&pool.wake);
    pthread_mutex_unlock(&pool.lock);
  }
  take_indices(job);
  // Every index is taken; wait for the ones a worker is still running.
  for (int i = 0; atomic_load_explicit(&pool.done, memory_order_acquire) < count; i++) {
    pause_briefly();
    if ((i & 1023) == 1023) sched_yield();
  }
  atomic_flag_clear_explicit(&pool.busy, memory_order_release);
  return 1;
}
