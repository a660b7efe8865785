// SPDX-License-Identifier: MIT
// Device names ("cpu", "cuda", "cuda:N") and the CUDA backend's entry when garlic is built
// without it (the real one is in cuda/, compiled with `make GARLIC_CUDA=1`).
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "backend/backend.h"

int backend_parse_device(const char *name, int *cuda_index, garlic_error *err)
{
    *cuda_index = -1;
    if (!strcmp(name, "cpu"))
        return GARLIC_OK;
    if (strncmp(name, "cuda", 4) || (name[4] && name[4] != ':'))
        return garlic_error_set(err, GARLIC_EINVAL,
                                "--device: unknown device \"%s\" (cpu, cuda or cuda:N)", name);
    if (!name[4]) {
        *cuda_index = 0;
    } else {
        char *end;
        errno = 0;
        long v = strtol(name + 5, &end, 10);
        if (name[5] < '0' || name[5] > '9' || *end || errno || v > 1023)
            return garlic_error_set(err, GARLIC_EINVAL,
                                    "--device: \"%s\": the device number must be 0 to 1023", name);
        *cuda_index = (int)v;
    }
    if (!backend_cuda_built())
        return garlic_error_set(err, GARLIC_EUNSUPPORTED,
                                "--device %s: garlic was built without CUDA (build it with "
                                "`make GARLIC_CUDA=1`)",
                                name);
    return GARLIC_OK;
}

int backend_parse_layers(const char *text, int64_t *layers, garlic_error *err)
{
    *layers = -1; // auto
    if (!text || !strcmp(text, "auto"))
        return GARLIC_OK;
    char *end;
    errno = 0;
    long long v = strtoll(text, &end, 10);
    if (text[0] < '0' || text[0] > '9' || *end || errno || v > 1000000)
        return garlic_error_set(err, GARLIC_EINVAL,
                                "--gpu-layers: \"%s\" is not a layer count (0 to 1000000) or auto",
                                text);
    *layers = v;
    return GARLIC_OK;
}

#ifndef GARLIC_CUDA
bool backend_cuda_built(void) { return false; }

backend *backend_cuda_new(int index, garlic_error *err)
{
    garlic_error_set(err, GARLIC_EUNSUPPORTED,
                     "cuda:%d: garlic was built without CUDA (build it with `make GARLIC_CUDA=1`)",
                     index);
    return NULL;
}
#endif
