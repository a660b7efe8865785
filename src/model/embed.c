// SPDX-License-Identifier: MIT
// Pooling and normalization of embeddings: how the hidden states of an input's tokens become
// one vector (the mean, the first token's, the last token's, as the model's pooling_type
// says) and its scaling to unit length. The engine pools chunk by chunk as a prompt is
// computed (model_pool_rows per chunk, model_pool_finish at the end), so a causal model's
// long input may span steps; the API layer truncates (Matryoshka dimensions) and
// renormalizes with model_embed_normalize.
#include <math.h>
#include <string.h>

#include "model/model.h"

void model_pool_rows(model_pooling p, const float *rows, uint64_t stride, uint32_t n, uint32_t pos0,
                     uint32_t n_total, uint32_t dim, float *acc)
{
    for (uint32_t i = 0; i < n; i++) {
        const float *row = rows + i * stride;
        uint32_t pos = pos0 + i;
        if (p == MODEL_POOLING_MEAN)
            for (uint32_t d = 0; d < dim; d++)
                acc[d] += row[d];
        else if ((p == MODEL_POOLING_CLS && pos == 0) ||
                 (p == MODEL_POOLING_LAST && pos + 1 == n_total))
            memcpy(acc, row, dim * sizeof *acc);
    }
}

void model_pool_finish(model_pooling p, float *acc, uint32_t n_total, uint32_t dim)
{
    if (p != MODEL_POOLING_MEAN || n_total == 0)
        return;
    float inv = 1.0f / (float)n_total;
    for (uint32_t d = 0; d < dim; d++)
        acc[d] *= inv;
}

void model_embed_normalize(float *v, uint32_t n)
{
    double ss = 0;
    for (uint32_t i = 0; i < n; i++)
        ss += (double)v[i] * v[i];
    if (ss <= 0)
        return;
    double inv = 1.0 / sqrt(ss);
    for (uint32_t i = 0; i < n; i++)
        v[i] = (float)(v[i] * inv);
}
