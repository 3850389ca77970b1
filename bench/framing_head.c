/*
 * Micro-benchmark of the strict HTTP/1.1 head check (src/http/framing.c), which every HTTP/1
 * request pays once before it is routed: parses a typical MCP POST head (as an SDK client sends
 * it) and a minimal GET head in a loop and prints nanoseconds per head.
 *
 *   build/framing_head [ITERATIONS]     (default 2,000,000)
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "http/framing.h"

static const char MCP_POST[] =
    "POST /mcp HTTP/1.1\r\n"
    "Host: 127.0.0.1:8080\r\n"
    "Connection: keep-alive\r\n"
    "Content-Type: application/json\r\n"
    "Accept: application/json, text/event-stream\r\n"
    "Authorization: Bearer ghk_0123456789abcdef0123456789abcdef0123456789abcdef\r\n"
    "Mcp-Session-Id: 3f2b6c1e9a8d4f7b0c5e2a1d9b8c7f6e3f2b6c1e9a8d4f7b0c5e2a1d9b8c7f6e\r\n"
    "MCP-Protocol-Version: 2025-11-25\r\n"
    "User-Agent: node\r\n"
    "Accept-Encoding: gzip, deflate\r\n"
    "Content-Length: 112\r\n"
    "\r\n";
static const char GET_HEALTHZ[] = "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";

static double run(const char *head, size_t len, long n)
{
    struct framing_head h;
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    for (long i = 0; i < n; i++) {
        if (framing_parse_head(head, len, &h, NULL) != 0 || h.head_len != len) {
            fprintf(stderr, "the benchmark head was refused\n");
            exit(1);
        }
        __asm__ volatile("" ::: "memory"); /* keep every iteration */
    }
    clock_gettime(CLOCK_MONOTONIC, &b);
    return ((double)(b.tv_sec - a.tv_sec) * 1e9 + (double)(b.tv_nsec - a.tv_nsec)) / (double)n;
}

int main(int argc, char **argv)
{
    long n = argc > 1 ? atol(argv[1]) : 2000000;
    if (n <= 0)
        n = 1;
    printf("MCP POST head (%zu bytes, 10 headers): %.0f ns\n", sizeof(MCP_POST) - 1,
           run(MCP_POST, sizeof(MCP_POST) - 1, n));
    printf("GET /healthz head (%zu bytes, 1 header): %.0f ns\n", sizeof(GET_HEALTHZ) - 1,
           run(GET_HEALTHZ, sizeof(GET_HEALTHZ) - 1, n));
    return 0;
}
