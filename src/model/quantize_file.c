// SPDX-License-Identifier: MIT
// Requantizing a whole GGUF file (model_quantize_file, behind `garlic quantize`): the types of
// every tensor are planned first, so that a refusal (requantizing without permission, a type
// garlic cannot decode) comes before anything is written; then the GGUF writer asks for each
// tensor in turn and model_quant_convert fills it from the mapped input on the compute pool.
// The input's pages are released after each tensor and the output is one tensor at a time, so
// the model is never held twice. The output is written under a temporary name and renamed.
#include "model/quantize.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/alloc.h"
#include "base/clock.h"

// One tensor of the output.
typedef struct planned_tensor {
    const gguf_tensor *in; // in the input file
    char *name;            // NUL-terminated copy of in->name
    uint32_t type;         // its type in the output
} planned_tensor;

typedef struct quantize_run {
    const model_quantize_params *p;
    gguf_file *in;
    planned_tensor *tensors; // (in->n_tensors)
    thread_pool *pool;
    uint64_t done, total; // elements converted or copied, and in all
    model_quantize_result result;
} quantize_run;

// Whether a and b name the same file (b may not exist).
static bool same_file(const char *a, const char *b)
{
    struct stat sa, sb;
    return stat(a, &sa) == 0 && stat(b, &sb) == 0 && sa.st_dev == sb.st_dev &&
        sa.st_ino == sb.st_ino;
}

// Replaces err's message with "<prefix>: <message>".
static int prefix_error(garlic_error *err, int code, const char *prefix)
{
    if (!err)
        return code;
    char message[sizeof err->message];
    snprintf(message, sizeof message, "%s", err->message);
    return garlic_error_set(err, code, "%s: %s", prefix, message);
}

// Chooses every tensor's type and checks that it can be made; fails before anything is
// written.
static int plan_tensors(quantize_run *r, garlic_error *err)
{
    const model_quantize_params *p = r->p;
    model_quant_model model;
    int rc = model_quant_model_read(r->in, &model, err);
    if (rc)
        return rc;
    r->tensors = garlic_calloc(r->in->n_tensors ? r->in->n_tensors : 1, sizeof *r->tensors);
    if (!r->tensors)
        return garlic_error_set(err, GARLIC_ENOMEM, "%s: out of memory", p->in_path);
    for (uint64_t i = 0; i < r->in->n_tensors; i++) {
        const gguf_tensor *t = &r->in->tensors[i];
        planned_tensor *pt = &r->tensors[i];
        pt->in = t;
        pt->name = garlic_strndup(t->name.data, t->name.len);
        if (!pt->name)
            return garlic_error_set(err, GARLIC_ENOMEM, "%s: out of memory", p->in_path);
        model_quant_choice c = model_quant_mix_type(&p->mix, &model, pt->name, t->ne, t->n_dims,
                                                    t->type);
        pt->type = c.type;
        r->result.n_fallback += c.fallback;
        r->total += t->n_elements;
        if (c.type == t->type)
            continue;
        const tensor_type_traits *from = tensor_type_get(t->type);
        if (!from->dequantize)
            return garlic_error_set(
                err, GARLIC_EUNSUPPORTED, "%s: tensor '%s': garlic cannot decode %s to make it %s",
                p->in_path, pt->name, from->name, tensor_type_get(c.type)->name);
        if (from->is_quantized && c.type != TENSOR_TYPE_F32 && !p->allow_requantize)
            return garlic_error_set(err, GARLIC_EINVAL,
                                    "%s: tensor '%s' is already quantized (%s): making it %s "
                                    "loses precision a second time; allow it with "
                                    "--allow-requantize (or start from the 16-bit model)",
                                    p->in_path, pt->name, from->name,
                                    tensor_type_get(c.type)->name);
    }
    return GARLIC_OK;
}

// The writer: the input's metadata with the mixture's file type, and the planned tensors
// (filled at write time).
static gguf_writer *build_writer(const quantize_run *r, garlic_error *err)
{
    const model_quantize_params *p = r->p;
    gguf_writer *w = gguf_writer_new();
    if (!w) {
        garlic_error_set(err, GARLIC_ENOMEM, "out of memory");
        return NULL;
    }
    int rc = GARLIC_OK;
    const gguf_kv *kv = NULL;
    for (uint64_t i = 0; i < r->in->n_kv && rc == GARLIC_OK; i++) {
        kv = &r->in->kv[i];
        char *key = garlic_strndup(kv->key.data, kv->key.len);
        rc = key ? gguf_writer_set_value(w, key, &kv->value) : GARLIC_ENOMEM;
        garlic_free(key);
    }
    if (rc != GARLIC_OK) {
        gguf_writer_free(w);
        garlic_error_set(err, rc, "%s: key '%.*s': cannot copy it (%s)", p->in_path,
                         (int)kv->key.len, kv->key.data, garlic_error_name(rc));
        return NULL;
    }
    rc = gguf_writer_set_u32(w, "general.file_type", p->mix.file_type); // in place if present
    if (rc == GARLIC_OK)
        rc = gguf_writer_set_u32(w, "general.quantization_version", 2);
    if (rc != GARLIC_OK) {
        gguf_writer_free(w);
        garlic_error_set(err, rc, "%s: metadata: out of memory", p->out_path);
        return NULL;
    }
    for (uint64_t i = 0; i < r->in->n_tensors; i++) {
        const planned_tensor *t = &r->tensors[i];
        rc = gguf_writer_add_tensor(w, t->name, t->type, t->in->n_dims, t->in->ne, NULL, err);
        if (rc != GARLIC_OK) {
            gguf_writer_free(w);
            prefix_error(err, rc, p->out_path);
            return NULL;
        }
    }
    return w;
}

// Gives the pages of a tensor's data in the mapping back to the kernel (they stay in the page
// cache), so that reading the whole input does not make it resident in this process.
static void release_pages(const gguf_file *f, const gguf_tensor *t)
{
    if (!f->map.data || !t->nbytes)
        return;
    uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
    uintptr_t from = ((uintptr_t)t->data + page - 1) / page * page;
    uintptr_t to = ((uintptr_t)t->data + t->nbytes) / page * page;
    if (to > from)
        madvise((void *)from, to - from, MADV_DONTNEED);
}

// The writer's fill callback: tensor index of the output, converted or copied into dst.
static int fill_tensor(void *user, size_t index, void *dst, uint64_t nbytes, garlic_error *err)
{
    quantize_run *r = user;
    const planned_tensor *t = &r->tensors[index];
    uint64_t n_per_row = t->in->ne[0], rows = n_per_row ? t->in->n_elements / n_per_row : 0;
    (void)nbytes; // the writer sized dst from the same type and shape
    if (r->p->progress)
        r->p->progress(r->p->progress_user, t->name, r->done, r->total);
    int rc = model_quant_convert(r->pool, t->name, t->in->type, t->in->data, t->type, dst,
                                 n_per_row, rows, err);
    if (rc)
        return prefix_error(err, rc, r->p->in_path);
    release_pages(r->in, t->in);
    r->result.n_converted += t->type != t->in->type;
    r->result.type_tensors[t->type]++;
    r->done += t->in->n_elements;
    if (r->p->progress && index + 1 == r->in->n_tensors)
        r->p->progress(r->p->progress_user, NULL, r->done, r->total);
    return GARLIC_OK;
}

// Writes the output under temp and renames it to the output path.
static int write_output(quantize_run *r, const char *temp, garlic_error *err)
{
    const model_quantize_params *p = r->p;
    gguf_writer *w = build_writer(r, err);
    if (!w)
        return err ? err->code : GARLIC_ENOMEM;
    int rc = gguf_writer_write(w, temp, fill_tensor, r, err); // removes temp on failure
    gguf_writer_free(w);
    if (rc)
        return rc;
    if (rename(temp, p->out_path) != 0) {
        rc = garlic_error_set(err, GARLIC_EIO, "%s: cannot rename %s to it: %s", p->out_path, temp,
                              strerror(errno));
        remove(temp);
        return rc;
    }
    struct stat st;
    r->result.out_bytes = stat(p->out_path, &st) == 0 ? (uint64_t)st.st_size : 0;
    return GARLIC_OK;
}

static int quantize_checked(quantize_run *r, const char *temp, garlic_error *err)
{
    const model_quantize_params *p = r->p;
    if (same_file(p->in_path, p->out_path) || same_file(p->in_path, temp))
        return garlic_error_set(err, GARLIC_EINVAL, "%s: the output would replace the input",
                                p->out_path);
    r->in = gguf_open(p->in_path, err);
    if (!r->in)
        return err ? err->code : GARLIC_EIO;
    uint64_t splits;
    if (gguf_get_u64(r->in, "split.count", &splits) == GARLIC_OK && splits > 1)
        return garlic_error_set(err, GARLIC_EUNSUPPORTED,
                                "%s: key 'split.count': one part of %llu (merge the parts first)",
                                p->in_path, (unsigned long long)splits);
    int rc = plan_tensors(r, err);
    if (rc)
        return rc;
    r->result.in_bytes = r->in->size;
    r->result.n_tensors = (uint32_t)r->in->n_tensors;
    r->result.n_elements = r->total;
    r->pool = thread_pool_new(p->n_threads, err);
    if (!r->pool)
        return err ? err->code : GARLIC_ENOMEM;
    return write_output(r, temp, err);
}

int model_quantize_file(const model_quantize_params *p, model_quantize_result *result,
                        garlic_error *err)
{
    if (!p->in_path || !p->out_path || p->n_threads < 1 || !tensor_type_get(p->mix.type))
        return garlic_error_set(err, GARLIC_EINVAL, "quantize: bad parameters");
    double t0 = garlic_now();
    char *temp = NULL;
    if (!p->temp_path) {
        size_t len = strlen(p->out_path);
        temp = garlic_malloc(len + sizeof ".part");
        if (!temp)
            return garlic_error_set(err, GARLIC_ENOMEM, "out of memory");
        memcpy(temp, p->out_path, len);
        memcpy(temp + len, ".part", sizeof ".part");
    }
    quantize_run r = {.p = p};
    int rc = quantize_checked(&r, p->temp_path ? p->temp_path : temp, err);
    r.result.seconds = garlic_now() - t0;
    if (rc == GARLIC_OK && result)
        *result = r.result;
    thread_pool_free(r.pool);
    for (uint64_t i = 0; r.tensors && i < r.in->n_tensors; i++)
        garlic_free(r.tensors[i].name);
    garlic_free(r.tensors);
    gguf_close(r.in);
    garlic_free(temp);
    return rc;
}
