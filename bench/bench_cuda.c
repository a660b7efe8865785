// SPDX-License-Identifier: MIT
// The GPU's own limits, for judging garlic's CUDA figures: the device memory bandwidth (a
// device-to-device copy of 1 GiB timed with events, bytes read plus written) and cuBLAS's
// F16 GEMM throughput (F16 inputs, F32 outputs and accumulation, as the backend calls it)
// on the matrices of a Llama-3-8B-shaped model at -p prompt tokens. Prints one "key value"
// line per figure (tools/verify-cuda.sh reads them). Built only with `make GARLIC_CUDA=1`.
//   bench_cuda [--dim 4096] [--kv-dim 1024] [--ffn 14336] [--vocab 128256] [--layers 32]
//              [-p 512]
#include <cublas_v2.h>
#include <cuda_runtime_api.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int check(cudaError_t e, const char *what)
{
    if (e == cudaSuccess)
        return 0;
    fprintf(stderr, "bench_cuda: %s: %s\n", what, cudaGetErrorString(e));
    return 1;
}

// Milliseconds of `rounds` device-to-device copies of bytes, after one warm-up copy.
static double copy_ms(void *dst, const void *src, size_t bytes, int rounds)
{
    cudaEvent_t start, stop;
    float ms = 0;
    cudaEventCreate(&start);
    cudaEventCreate(&stop);
    cudaMemcpy(dst, src, bytes, cudaMemcpyDeviceToDevice);
    cudaEventRecord(start, 0);
    for (int i = 0; i < rounds; i++)
        cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, 0);
    cudaEventRecord(stop, 0);
    cudaEventSynchronize(stop);
    cudaEventElapsedTime(&ms, start, stop);
    cudaEventDestroy(start);
    cudaEventDestroy(stop);
    return ms;
}

// Seconds of one F16 GEMM y (n_tok x rows) = w (rows x n_in) . x (n_tok x n_in), as the
// backend's cublasGemmEx call, averaged over rounds after a warm-up; negative on failure.
static double gemm_seconds(cublasHandle_t h, const void *w, const void *x, float *y, int rows,
                           int n_in, int n_tok, int rounds)
{
    const float alpha = 1.0f, beta = 0.0f;
    cudaEvent_t start, stop;
    float ms = 0;
    cudaEventCreate(&start);
    cudaEventCreate(&stop);
    cublasStatus_t s = CUBLAS_STATUS_SUCCESS;
    for (int i = -1; i < rounds && s == CUBLAS_STATUS_SUCCESS; i++) {
        if (i == 0)
            cudaEventRecord(start, 0);
        s = cublasGemmEx(h, CUBLAS_OP_T, CUBLAS_OP_N, rows, n_tok, n_in, &alpha, w, CUDA_R_16F,
                         n_in, x, CUDA_R_16F, n_in, &beta, y, CUDA_R_32F, rows, CUBLAS_COMPUTE_32F,
                         CUBLAS_GEMM_DEFAULT);
    }
    cudaEventRecord(stop, 0);
    cudaEventSynchronize(stop);
    cudaEventElapsedTime(&ms, start, stop);
    cudaEventDestroy(start);
    cudaEventDestroy(stop);
    if (s != CUBLAS_STATUS_SUCCESS) {
        fprintf(stderr, "bench_cuda: cublasGemmEx %d x %d x %d: %s\n", rows, n_in, n_tok,
                cublasGetStatusString(s));
        return -1;
    }
    return ms * 1e-3 / rounds;
}

int main(int argc, char **argv)
{
    long dim = 4096, kv_dim = 1024, ffn = 14336, vocab = 128256, layers = 32, n_tok = 512;
    for (int i = 1; i + 1 < argc; i += 2) {
        long v = strtol(argv[i + 1], NULL, 10);
        if (v <= 0 || v > 1 << 20) {
            fprintf(stderr, "bench_cuda: %s: %s is not a size\n", argv[i], argv[i + 1]);
            return 2;
        }
        if (!strcmp(argv[i], "--dim"))
            dim = v;
        else if (!strcmp(argv[i], "--kv-dim"))
            kv_dim = v;
        else if (!strcmp(argv[i], "--ffn"))
            ffn = v;
        else if (!strcmp(argv[i], "--vocab"))
            vocab = v;
        else if (!strcmp(argv[i], "--layers"))
            layers = v;
        else if (!strcmp(argv[i], "-p"))
            n_tok = v;
        else {
            fprintf(stderr, "bench_cuda: unknown option %s\n", argv[i]);
            return 2;
        }
    }
    int n_dev = 0;
    if (cudaGetDeviceCount(&n_dev) != cudaSuccess || n_dev == 0) {
        fprintf(stderr, "bench_cuda: no CUDA device\n");
        return 1;
    }
    struct cudaDeviceProp prop;
    if (check(cudaGetDeviceProperties(&prop, 0), "cudaGetDeviceProperties"))
        return 1;
    printf("device %s\n", prop.name);

    size_t bytes = (size_t)1 << 30;
    void *a = NULL, *b = NULL;
    if (check(cudaMalloc(&a, bytes), "cudaMalloc") || check(cudaMalloc(&b, bytes), "cudaMalloc"))
        return 1;
    cudaMemset(a, 1, bytes);
    double ms = copy_ms(b, a, bytes, 10);
    printf("bandwidth_gbs %.1f\n", 2.0 * bytes * 10 / (ms * 1e-3) / 1e9);
    cudaFree(a);
    cudaFree(b);

    // The matrices of one layer (rows x n_in) and the output, each timed once per shape; the
    // pass counts each layer's matrices `count` times and not the output (a prompt's logits
    // are computed for its last token only).
    struct {
        const char *name;
        long rows, n_in, count;
    } shapes[] = {
        {"attn_q", dim, dim, layers},    {"attn_k", kv_dim, dim, layers},
        {"attn_v", kv_dim, dim, layers}, {"attn_output", dim, dim, layers},
        {"ffn_gate", ffn, dim, layers},  {"ffn_up", ffn, dim, layers},
        {"ffn_down", dim, ffn, layers},  {"output", vocab, dim, 0},
    };
    size_t max_w = 0, max_in = 0, max_out = 0;
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
        size_t w = (size_t)shapes[i].rows * shapes[i].n_in;
        max_w = w > max_w ? w : max_w;
        max_in = (size_t)shapes[i].n_in > max_in ? (size_t)shapes[i].n_in : max_in;
        max_out = (size_t)shapes[i].rows > max_out ? (size_t)shapes[i].rows : max_out;
    }
    void *w = NULL, *x = NULL;
    float *y = NULL;
    if (check(cudaMalloc(&w, max_w * 2), "cudaMalloc") ||
        check(cudaMalloc(&x, max_in * n_tok * 2), "cudaMalloc") ||
        check(cudaMalloc((void **)&y, max_out * n_tok * 4), "cudaMalloc"))
        return 1;
    cudaMemset(w, 0x11, max_w * 2); // small finite halves
    cudaMemset(x, 0x11, max_in * n_tok * 2);
    cublasHandle_t h;
    if (cublasCreate(&h) != CUBLAS_STATUS_SUCCESS) {
        fprintf(stderr, "bench_cuda: cublasCreate failed\n");
        return 1;
    }
    double total_s = 0, total_flop = 0;
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
        double s = gemm_seconds(h, w, x, y, (int)shapes[i].rows, (int)shapes[i].n_in, (int)n_tok,
                                10);
        if (s < 0)
            return 1;
        double flop = 2.0 * shapes[i].rows * shapes[i].n_in * n_tok;
        printf("gemm_%s_tflops %.1f\n", shapes[i].name, flop / s / 1e12);
        total_s += s * shapes[i].count;
        total_flop += flop * shapes[i].count;
    }
    printf("gemm_tflops %.1f\n", total_flop / total_s / 1e12);
    printf("gemm_pass_seconds %.4f\n", total_s);
    printf("gemm_pp_tokens_per_second %.1f\n", n_tok / total_s);
    cublasDestroy(h);
    cudaFree(w);
    cudaFree(x);
    cudaFree(y);
    return 0;
}
