// SPDX-License-Identifier: MIT
// stub
#if defined(__x86_64__)
#include "kernels/variants.h"
#include "tensor/types.h"

const kernel_type_ops kernel_avx512_type_ops[TENSOR_TYPE_COUNT] = {{0}};
const kernel_float_ops kernel_avx512_float_ops = {
    .dot_f32 = kernel_dot_f32_ref,
    .dot_f32_f16 = kernel_dot_f32_f16_ref,
    .axpy_f32 = kernel_axpy_f32_ref,
    .axpy_f16 = kernel_axpy_f16_ref,
};
#endif
