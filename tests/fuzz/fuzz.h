/* libFuzzer harnesses for qlab's readers. Each fuzz_<reader>.c defines
 * LLVMFuzzerTestOneInput; built with clang -fsanitize=fuzzer for `make
 * fuzz`, or with driver.c (any compiler) to replay committed inputs in
 * `make test`. A reader must answer every input with a status, never a
 * crash, a leak or undefined behaviour. */
#ifndef QLAB_FUZZ_H
#define QLAB_FUZZ_H
#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Writes data to a file private to this process (in /dev/shm when it
 * exists) named by suffix; returns its path (static storage) or NULL. */
const char *fuzz_write_file(const char *suffix, const uint8_t *data, size_t size);

#endif
