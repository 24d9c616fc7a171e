/* fuzz_write_file: the readers take paths, so each input goes to a file. */
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "fuzz.h"

const char *fuzz_write_file(const char *suffix, const uint8_t *data, size_t size) {
    static char path[256];
    struct stat st;
    const char *dir = stat("/dev/shm", &st) == 0 && S_ISDIR(st.st_mode) ? "/dev/shm" : "/tmp";
    snprintf(path, sizeof path, "%s/qlab_fuzz_%ld_%s", dir, (long)getpid(), suffix);
    FILE *f = fopen(path, "wb");
    if (!f) return NULL;
    int ok = size == 0 || fwrite(data, 1, size, f) == size;
    if (fclose(f) != 0 || !ok) return NULL;
    return path;
}
