/* Replays inputs through a harness without libFuzzer: every file named on
 * the command line (folders: every file inside). Prints "N passed, N
 * failed" so tests/run.sh counts it; a crash or a sanitizer report is the
 * failure. With -m N each input is also run N times mutated (byte flips,
 * overwrites, cuts, repeated chunks; a fixed seed, so a failure replays):
 * a few seconds of dumb fuzzing in every `make test`, no clang needed. */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include "fuzz.h"

static uint64_t rng = 0x9e3779b97f4a7c15ull;
static uint64_t next(void) { rng ^= rng << 13; rng ^= rng >> 7; rng ^= rng << 17; return rng; }

// one random change of buf[*n] (capacity cap) in place
static void mutate(uint8_t *buf, size_t *n, size_t cap) {
    size_t len = *n;
    switch (next() % 5) {
    case 0: if (len) buf[next() % len] ^= (uint8_t)(1u << (next() % 8)); break;           /* flip a bit */
    case 1: if (len) buf[next() % len] = (uint8_t)next(); break;                            /* overwrite a byte */
    case 2: if (len) { static const uint8_t v[] = {0, 0xff, 0x7f, 0x80}; buf[next() % len] = v[next() % 4]; } break;
    case 3: if (len) *n = next() % len; break;                                             /* cut */
    default: {                                                                             /* repeat a chunk */
        if (!len) break;
        size_t at = next() % len, k = 1 + next() % 16;
        if (at + k > len) k = len - at;
        if (len + k > cap) break;
        memmove(buf + at + k, buf + at, len - at);
        *n = len + k;
    }
    }
}

static int mutations;

static int run_file(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) { fprintf(stderr, "cannot read %s\n", path); return 1; }
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *buf = malloc(n > 0 ? (size_t)n : 1);
    size_t got = buf && n > 0 ? fread(buf, 1, (size_t)n, f) : 0;
    fclose(f);
    if (!buf) return 1;
    LLVMFuzzerTestOneInput(buf, got);
    if (mutations) {
        size_t cap = got + 64;
        uint8_t *m = malloc(cap);
        for (int i = 0; m && i < mutations; i++) {
            size_t len = got;
            memcpy(m, buf, got);
            for (int k = 1 + (int)(next() % 4); k > 0; k--) mutate(m, &len, cap);
            LLVMFuzzerTestOneInput(m, len);
        }
        free(m);
    }
    free(buf);
    return 0;
}

int main(int argc, char **argv) {
    int passed = 0, failed = 0;
    int first = 1;
    if (argc > 2 && !strcmp(argv[1], "-m")) { mutations = atoi(argv[2]); first = 3; }
    for (int i = first; i < argc; i++) {
        struct stat st;
        if (stat(argv[i], &st) != 0) { fprintf(stderr, "no such input: %s\n", argv[i]); failed++; continue; }
        if (!S_ISDIR(st.st_mode)) { run_file(argv[i]) ? failed++ : passed++; continue; }
        DIR *d = opendir(argv[i]);
        struct dirent *e;
        while (d && (e = readdir(d))) {
            if (e->d_name[0] == '.') continue;
            char p[4096];
            snprintf(p, sizeof p, "%s/%s", argv[i], e->d_name);
            run_file(p) ? failed++ : passed++;
        }
        if (d) closedir(d);
    }
    printf("%d passed, %d failed\n", passed, failed);
    return failed != 0;
}
