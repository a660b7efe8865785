// SPDX-License-Identifier: MIT
// Chat output parser throughput: about 1 MiB of model output per format (plain prose with
// stray '<' and '[', Qwen3-style reasoning then a tool call repeated, gpt-oss harmony messages
// and calls, Qwen3-Coder XML calls) fed in 4-byte pieces as a detokenizer would, best of 3.
// The figure to compare with a decode step is the time per piece. Reported, never asserted.
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "base/buffer.h"
#include "sampler/chat_output.h"

enum { TARGET_BYTES = 1 << 20, PIECE = 4 };

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

typedef struct workload {
    const char *name;
    chat_output_format format;
    const char *unit; // repeated to TARGET_BYTES
} workload;

static const workload workloads[] = {
    {"plain prose", CHAT_OUTPUT_FORMAT_HERMES,
     "The quick brown fox (a < b, [x]) jumps over the lazy dog; caf\xc3\xa9 \xe6\x9d\xb1\xe4\xba"
     "\xac. "},
    {"hermes think+call", CHAT_OUTPUT_FORMAT_HERMES,
     "<think>\nThe user wants the weather, so I call the tool with the city.\n</think>\n\n"
     "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"location\": {\"city\": "
     "\"Prague\"}, \"unit\": \"celsius\"}}\n</tool_call>\n"},
    {"harmony", CHAT_OUTPUT_FORMAT_HARMONY,
     "<|channel|>analysis<|message|>Need the weather; call the tool.<|end|><|start|>assistant"
     "<|channel|>commentary to=functions.get_weather <|constrain|>json<|message|>{\"city\": "
     "\"Prague\"}<|call|><|start|>assistant<|channel|>final<|message|>It is sunny.<|end|>"
     "<|start|>assistant"},
    {"qwen3-coder calls", CHAT_OUTPUT_FORMAT_QWEN3_CODER,
     "Listing.\n<tool_call>\n<function=run_shell>\n<parameter=command>\nls -la /tmp\n"
     "</parameter>\n<parameter=timeout>\n30\n</parameter>\n</function>\n</tool_call>\n"},
};

int main(void)
{
    printf("%-20s %10s %10s %12s %8s\n", "workload", "MiB", "MB/s", "ns/piece", "calls");
    for (size_t w = 0; w < sizeof workloads / sizeof *workloads; w++) {
        garlic_buf text = {0};
        while (text.len < TARGET_BYTES)
            garlic_buf_append_str(&text, workloads[w].unit);
        chat_output_options o = chat_output_options_default();
        o.format = workloads[w].format;
        o.tools = true;
        o.id_seed = 1;
        garlic_error err;
        chat_output *p = chat_output_new(&o, &err);
        if (!p) {
            printf("%s: %s\n", workloads[w].name, err.message);
            return 1;
        }
        double best = 1e9;
        uint32_t calls = 0;
        for (int r = 0; r < 3; r++) {
            chat_output_reset(p);
            const chat_output_event *ev;
            size_t n;
            double t0 = now();
            for (size_t at = 0; at < text.len; at += PIECE) {
                size_t len = text.len - at < PIECE ? text.len - at : PIECE;
                if (chat_output_feed(p, text.data + at, len, &ev, &n, &err) != GARLIC_OK) {
                    printf("%s: %s\n", workloads[w].name, err.message);
                    return 1;
                }
            }
            chat_output_finish(p, &ev, &n, &err);
            double t = now() - t0;
            best = t < best ? t : best;
            calls = chat_output_call_count(p);
        }
        size_t pieces = (text.len + PIECE - 1) / PIECE;
        printf("%-20s %10.2f %10.1f %12.1f %8u\n", workloads[w].name, (double)text.len / (1 << 20),
               (double)text.len / best / 1e6, best / pieces * 1e9, calls);
        chat_output_free(p);
        garlic_buf_deinit(&text);
    }
    return 0;
}
