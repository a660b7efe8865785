// SPDX-License-Identifier: MIT
// Read-only file mappings that survive their file changing underneath (a model re-downloaded
// or copied onto the path it is served from). Each mapping keeps its file open and remembers
// the file as it was mapped (device, inode, size, modification and status-change times), so
// that garlic_mapping_check can tell, with one fstat, that it changed. A file truncated while
// mapped makes reads past its new end fault with SIGBUS: a process-wide handler, installed
// with the first mapping, replaces the whole mapping whose page faulted with zero pages and
// marks it damaged, so the read goes on (reading zeros) and the owner fails its work cleanly
// at its next check. A SIGBUS outside every mapping goes to the handler that was there
// before, or ends the process as it would without us.
#ifndef GARLIC_BASE_MAPPING_H
#define GARLIC_BASE_MAPPING_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#include "base/error.h"

enum { GARLIC_MAPPING_SLOTS = 4096 }; // mappings registered at once, in the whole process

typedef struct garlic_mapping {
    const uint8_t *data; // (size) the file's bytes, read-only; NULL when not open
    size_t size;
    int fd;   // kept open while mapped: fstat sees the mapped file even after a rename
    int slot; // its entry in the table the SIGBUS handler reads
    // The file as it was when mapped.
    dev_t dev;
    ino_t ino;
    struct timespec mtime, ctime;
} garlic_mapping;

// Maps the regular file at path read-only (MAP_PRIVATE) and registers the mapping with the
// SIGBUS handler (installed by the first call, and again by a later one that finds another
// handler in its place; a SIGBUS that is not ours goes to the handler it replaced). GARLIC_EIO when the file cannot be opened, is
// not a regular file or cannot be mapped, or when every slot is taken; GARLIC_EFORMAT when it
// is empty. The message names path. On failure m is left closed (garlic_mapping_close on it is a no-op).
int garlic_mapping_open(garlic_mapping *m, const char *path, garlic_error *err);

// Unmaps, unregisters and closes; m's pointers are invalid afterwards. A no-op on a mapping
// that is not open (zeroed, or closed already).
void garlic_mapping_close(garlic_mapping *m);

// Whether the file is still what was mapped: GARLIC_OK, or GARLIC_EIO with a message that
// starts with name (the caller's name for the file; never its directory, as the message may
// reach remote clients) and says what changed: a read past the end of a truncated file (the
// mapping holds zeros now), a different size, or new modification or status-change times (an
// overwrite in place, even one that restores the modification time). A file that was replaced
// by a rename or deleted (no link left) is no change: the mapping still holds the old file.
int garlic_mapping_check(const garlic_mapping *m, const char *name, garlic_error *err);

// Whether the SIGBUS handler replaced m's pages with zeros.
bool garlic_mapping_damaged(const garlic_mapping *m);

#endif
