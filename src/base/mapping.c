// SPDX-License-Identifier: MIT
// Read-only file mappings and the SIGBUS handler that keeps a truncated one readable (see
// mapping.h). The handler runs on whichever thread faulted and may interrupt anything, so
// the table it reads is a fixed array of slots changed only with atomics: a slot is claimed
// (FREE -> CLAIMED) with a compare-and-swap, filled, then published as LIVE; the handler
// looks only at LIVE slots. It calls nothing but mmap, sigaction and raise, which are
// async-signal-safe.
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/mapping.h"

enum { SLOT_FREE, SLOT_CLAIMED, SLOT_LIVE };

typedef struct slot {
    atomic_int state;
    _Atomic uintptr_t start; // the mapping's first byte
    _Atomic size_t len;      // its bytes
    atomic_bool damaged;     // the handler replaced it with zero pages
} slot;

static slot slots[GARLIC_MAPPING_SLOTS];
static struct sigaction previous; // what SIGBUS did before the handler was installed
static pthread_mutex_t install_mu = PTHREAD_MUTEX_INITIALIZER; // serializes install

// SIGBUS: a fault inside a LIVE mapping (its file was truncated under it) replaces the whole
// mapping with anonymous zero pages and returns, so the faulting read runs again and reads
// zeros. Anything else goes to the previous handler, or ends the process by default.
static void on_sigbus(int sig, siginfo_t *info, void *context)
{
    uintptr_t addr = (uintptr_t)info->si_addr;
    for (size_t i = 0; i < GARLIC_MAPPING_SLOTS; i++) {
        slot *s = &slots[i];
        if (atomic_load_explicit(&s->state, memory_order_acquire) != SLOT_LIVE)
            continue;
        uintptr_t start = atomic_load_explicit(&s->start, memory_order_relaxed);
        size_t len = atomic_load_explicit(&s->len, memory_order_relaxed);
        if (addr < start || addr - start >= len)
            continue;
        void *p = mmap((void *)start, len, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1,
                       0);
        if (p == MAP_FAILED)
            break; // cannot heal it: fail as if we were not here
        atomic_store(&s->damaged, true);
        return;
    }
    if ((previous.sa_flags & SA_SIGINFO) && previous.sa_sigaction) {
        previous.sa_sigaction(sig, info, context);
        return;
    }
    if (!(previous.sa_flags & SA_SIGINFO) && previous.sa_handler != SIG_DFL &&
        previous.sa_handler != SIG_IGN) {
        previous.sa_handler(sig);
        return;
    }
    struct sigaction dfl;
    memset(&dfl, 0, sizeof dfl);
    dfl.sa_handler = SIG_DFL;
    sigemptyset(&dfl.sa_mask);
    sigaction(SIGBUS, &dfl, NULL);
    raise(sig); // delivered once the handler returns (a fault would also recur)
}

// Installs on_sigbus unless it is SIGBUS's handler already (something may have put its own
// in since: a test harness does around every test). 0, or -1 with errno.
static int install(void)
{
    pthread_mutex_lock(&install_mu);
    struct sigaction current;
    int rc = sigaction(SIGBUS, NULL, &current);
    if (rc == 0 && !((current.sa_flags & SA_SIGINFO) && current.sa_sigaction == on_sigbus)) {
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_sigaction = on_sigbus;
        sa.sa_flags = SA_SIGINFO | SA_RESTART;
        sigemptyset(&sa.sa_mask);
        rc = sigaction(SIGBUS, &sa, &previous);
    }
    pthread_mutex_unlock(&install_mu);
    return rc;
}

// Claims a free slot for [start, start + len) and publishes it; -1 when all are taken.
static int slot_claim(const void *start, size_t len)
{
    for (int i = 0; i < GARLIC_MAPPING_SLOTS; i++) {
        int expected = SLOT_FREE;
        if (!atomic_compare_exchange_strong(&slots[i].state, &expected, SLOT_CLAIMED))
            continue;
        atomic_store_explicit(&slots[i].start, (uintptr_t)start, memory_order_relaxed);
        atomic_store_explicit(&slots[i].len, len, memory_order_relaxed);
        atomic_store(&slots[i].damaged, false);
        atomic_store_explicit(&slots[i].state, SLOT_LIVE, memory_order_release);
        return i;
    }
    return -1;
}

int garlic_mapping_open(garlic_mapping *m, const char *path, garlic_error *err)
{
    memset(m, 0, sizeof *m);
    m->fd = -1, m->slot = -1;
    if (install() != 0)
        return garlic_error_set(err, GARLIC_EIO, "%s: cannot install the SIGBUS handler: %s", path,
                                strerror(errno));
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return garlic_error_set(err, GARLIC_EIO, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return garlic_error_set(err, GARLIC_EIO, "%s: not a regular file", path);
    }
    if (st.st_size == 0) {
        close(fd);
        return garlic_error_set(err, GARLIC_EFORMAT, "%s: empty file", path);
    }
    void *map = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    if (map == MAP_FAILED) {
        int e = errno;
        close(fd);
        return garlic_error_set(err, GARLIC_EIO, "%s: cannot map: %s", path, strerror(e));
    }
    int claimed = slot_claim(map, (size_t)st.st_size);
    if (claimed < 0) {
        munmap(map, (size_t)st.st_size);
        close(fd);
        return garlic_error_set(err, GARLIC_EIO, "%s: more than %d files mapped at once", path,
                                GARLIC_MAPPING_SLOTS);
    }
    m->data = map;
    m->size = (size_t)st.st_size;
    m->fd = fd;
    m->slot = claimed;
    m->dev = st.st_dev, m->ino = st.st_ino;
    m->mtime = st.st_mtim, m->ctime = st.st_ctim;
    return GARLIC_OK;
}

void garlic_mapping_close(garlic_mapping *m)
{
    if (!m->data)
        return;
    // Unmapped before the slot is freed: a fault in between would still find it (and any
    // read during the close is the caller's bug).
    munmap((void *)m->data, m->size);
    atomic_store_explicit(&slots[m->slot].state, SLOT_FREE, memory_order_release);
    close(m->fd);
    m->data = NULL, m->size = 0, m->fd = -1, m->slot = -1;
}

bool garlic_mapping_damaged(const garlic_mapping *m)
{
    return m->data && atomic_load(&slots[m->slot].damaged);
}

static bool same_time(struct timespec a, struct timespec b)
{
    return a.tv_sec == b.tv_sec && a.tv_nsec == b.tv_nsec;
}

int garlic_mapping_check(const garlic_mapping *m, const char *name, garlic_error *err)
{
    if (!m->data)
        return GARLIC_OK;
    if (garlic_mapping_damaged(m))
        return garlic_error_set(err, GARLIC_EIO,
                                "%s: the file was truncated while mapped (it was %zu bytes; what "
                                "lay past its new end reads as zeros)",
                                name, m->size);
    struct stat st;
    if (fstat(m->fd, &st) != 0)
        return garlic_error_set(err, GARLIC_EIO, "%s: cannot stat the mapped file: %s", name,
                                strerror(errno));
    if ((uint64_t)st.st_size != m->size)
        return garlic_error_set(err, GARLIC_EIO, "%s: the file is %lld bytes now, it was %zu", name,
                                (long long)st.st_size, m->size);
    if (st.st_nlink == 0) // replaced by a rename, or deleted: nobody can reach it to write
        return GARLIC_OK;
    if (!same_time(st.st_mtim, m->mtime))
        return garlic_error_set(
            err, GARLIC_EIO, "%s: the file was written to (its modification time changed)", name);
    if (!same_time(st.st_ctim, m->ctime))
        return garlic_error_set(err, GARLIC_EIO,
                                "%s: the file was changed (its status-change time changed)", name);
    return GARLIC_OK;
}
