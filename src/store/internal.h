// SPDX-License-Identifier: MIT
// What the store's own files (store.c, pull.c, create.c) share beyond store.h: not for use
// outside src/store.
#ifndef GARLIC_STORE_INTERNAL_H
#define GARLIC_STORE_INTERNAL_H

#include "base/error.h"

// Removes each blob in root/blobs that no manifest names and no pull or create holds the lock
// of (locks/sha256-<hex>.lock). Damaged manifests are skipped with a warning (their blobs may
// then go: run it only after a manifest was removed or replaced).
int store_collect_garbage(const char *root, garlic_error *err);

#endif
