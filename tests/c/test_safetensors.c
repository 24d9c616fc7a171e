/* safetensors: round trip of every dtype, rejection of malformed headers
 * (each built as bytes), truncation and corruption never crash, writer
 * failures leave nothing behind. */
#include <stdint.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>
#include "test.h"
#include "qlab/alloc.h"
#include "qlab/rng.h"
#include "qlab/safetensors.h"

/* New empty temp file; path written into buf. */
static void tmp_file(char *buf, size_t n) {
    snprintf(buf, n, "/tmp/qlab_st_XXXXXX");
    int fd = mkstemp(buf);
    if (fd >= 0) close(fd);
}

static void write_bytes(const char *path, const void *p, size_t n) {
    FILE *f = fopen(path, "wb");
    if (!f) return;
    if (n) fwrite(p, 1, n, f);
    fclose(f);
}

static uint8_t *read_bytes(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long sz = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *b = malloc((size_t)sz + 1);
    *n = fread(b, 1, (size_t)sz, f);
    fclose(f);
    return b;
}

/* A file with the given header JSON and ndata data bytes (0, 1, 2, ...). */
static void write_st(const char *path, const char *json, size_t hlen, size_t ndata) {
    size_t n = 8 + hlen + ndata;
    uint8_t *b = calloc(1, n);
    for (int i = 0; i < 8; i++) b[i] = (uint8_t)((uint64_t)hlen >> (8 * i));
    memcpy(b + 8, json, hlen);
    for (size_t i = 0; i < ndata; i++) b[8 + hlen + i] = (uint8_t)i;
    write_bytes(path, b, n);
    free(b);
}

/* Reads a file made of json + ndata bytes; expects QL_EFORMAT and every detail in the message. */
static void expect_bad_at(int line, const char *json, size_t ndata, const char *d1, const char *d2) {
    char path[64];
    tmp_file(path, sizeof path);
    write_st(path, json, strlen(json), ndata);
    int64_t mem = ql_mem_current();
    ql_st_file *f = (ql_st_file *)1;
    ql_status s = ql_st_read(path, &f);
    const char *m = ql_last_error();
    CHECK_MSG(s == QL_EFORMAT, "line %d: status %s for %s", line, ql_status_name(s), json);
    CHECK_MSG(f == NULL, "line %d: out not NULL", line);
    CHECK_MSG(strstr(m, path), "line %d: message lacks the path: %s", line, m);
    CHECK_MSG(!d1 || strstr(m, d1), "line %d: message lacks '%s': %s", line, d1, m);
    CHECK_MSG(!d2 || strstr(m, d2), "line %d: message lacks '%s': %s", line, d2, m);
    CHECK_MSG(ql_mem_current() == mem, "line %d: leaked %lld bytes", line, (long long)(ql_mem_current() - mem));
    if (s == QL_OK) ql_st_free(f);
    unlink(path);
}
#define expect_bad(json, ndata, d1, d2) expect_bad_at(__LINE__, json, ndata, d1, d2)

#define ENTRY(name, dt, shape, off) "\"" name "\":{\"dtype\":\"" dt "\",\"shape\":" shape ",\"data_offsets\":" off "}"

TEST(st_roundtrip_all_dtypes) {
    static const ql_dtype dts[6] = {QL_DTYPE_F32, QL_DTYPE_F16, QL_DTYPE_BF16, QL_DTYPE_U8, QL_DTYPE_S8, QL_DTYPE_S32};
    static const char *names[6] = {"fc.weight", "h.half", "b.bf", "img", "q.w", "zp"};
    int64_t mem0 = ql_mem_current();
    ql_tensor *t[8];
    for (int i = 0; i < 6; i++) {
        int64_t shape[3] = {2, 3, i + 1};
        t[i] = ql_tensor_new(dts[i], 1 + i % 3, shape);
        uint8_t *p = t[i]->data;
        for (size_t k = 0; k < ql_tensor_bytes(t[i]); k++) p[k] = (uint8_t)(k * 7 + i);
    }
    t[6] = ql_tensor_new(QL_DTYPE_F32, 0, NULL);             /* scalar */
    ql_f32(t[6])[0] = 3.5f;
    int64_t e[2] = {0, 4};
    t[7] = ql_tensor_new(QL_DTYPE_S8, 2, e);                  /* empty */
    ql_st_writer *w = ql_st_writer_new();
    for (int i = 0; i < 6; i++) CHECK_OK(ql_st_writer_add(w, names[i], t[i]));
    CHECK_OK(ql_st_writer_add(w, "scalar", t[6]));
    CHECK_OK(ql_st_writer_add(w, "empty", t[7]));
    CHECK(ql_st_writer_add(w, "img", t[0]) == QL_EINVAL);
    CHECK(ql_st_writer_add(w, "__metadata__", t[0]) == QL_EINVAL);
    CHECK_OK(ql_st_writer_meta(w, "qlab.graph", "{\"nodes\": [\"a\\\"b\"]}"));
    CHECK_OK(ql_st_writer_meta(w, "format", "pt"));
    CHECK_OK(ql_st_writer_meta(w, "format", "qlab"));          /* replaces */
    char path[64];
    tmp_file(path, sizeof path);
    CHECK_OK(ql_st_writer_write(w, path));

    size_t n;
    uint8_t *raw = read_bytes(path, &n);
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--) hlen = hlen << 8 | raw[i];
    CHECK((8 + hlen) % 8 == 0);
    CHECK(raw[8] == '{');
    free(raw);

    ql_st_file *f = NULL;
    CHECK_OK(ql_st_read(path, &f));
    if (f) {
        CHECK(f->n == 8);
        CHECK(f->nmeta == 2);
        CHECK(ql_st_meta(f, "format") && !strcmp(ql_st_meta(f, "format"), "qlab"));
        CHECK(ql_st_meta(f, "qlab.graph") && !strcmp(ql_st_meta(f, "qlab.graph"), "{\"nodes\": [\"a\\\"b\"]}"));
        CHECK(ql_st_meta(f, "absent") == NULL);
        for (int i = 0; i < 8; i++) {
            const ql_st_entry *en = &f->entries[i];
            CHECK(!strcmp(en->name, i < 6 ? names[i] : i == 6 ? "scalar" : "empty"));   /* insertion order */
            CHECK(ql_st_find(f, en->name) == en);
            ql_tensor *r = NULL;
            CHECK_OK(ql_st_tensor(f, en, &r));
            if (!r) continue;
            CHECK(r->dtype == t[i]->dtype && ql_tensor_same_shape(r, t[i]));
            CHECK(ql_tensor_bytes(r) == ql_tensor_bytes(t[i]));
            CHECK(!r->numel || !memcmp(r->data, t[i]->data, ql_tensor_bytes(r)));
            ql_tensor_free(r);
        }
        CHECK(ql_st_find(f, "nope") == NULL);
        ql_st_free(f);
    }
    ql_st_writer_free(w);
    for (int i = 0; i < 8; i++) ql_tensor_free(t[i]);
    unlink(path);
    CHECK(ql_mem_current() == mem0);
}

TEST(st_accepts_edge_cases) {
    char path[64];
    tmp_file(path, sizeof path);
    const char *ok[] = {
        "{}",
        "{}      ",                                                              /* trailing spaces */
        "{\"__metadata__\":{}}",
        "{" ENTRY("a", "F32", "[2]", "[0,8]") "," ENTRY("z", "U8", "[0]", "[4,4]") "}", /* empty inside a */
        "{" ENTRY("a", "U8", "[2]", "[8,10]") "," ENTRY("b", "U8", "[]", "[0,1]") "}",  /* hole, scalar */
    };
    for (size_t i = 0; i < sizeof ok / sizeof *ok; i++) {
        write_st(path, ok[i], strlen(ok[i]), 16);
        ql_st_file *f = NULL;
        CHECK_OK(ql_st_read(path, &f));
        ql_st_free(f);
    }
    unlink(path);
}

TEST(st_rejects_malformed) {
    char path[64];
    tmp_file(path, sizeof path);
    /* file shorter than 8 bytes */
    write_bytes(path, "\x05\0\0\0", 4);
    ql_st_file *f = NULL;
    CHECK(ql_st_read(path, &f) == QL_EFORMAT && f == NULL);
    CHECK(strstr(ql_last_error(), "shorter than the 8-byte"));
    /* header length larger than the file */
    uint8_t b[20] = {0xe8, 0x03};
    write_bytes(path, b, sizeof b);
    CHECK(ql_st_read(path, &f) == QL_EFORMAT && f == NULL);
    CHECK(strstr(ql_last_error(), "header length 1000 larger than the file (20 bytes)"));
    uint8_t huge[16] = {0, 0, 0, 0, 0, 0, 0, 0x80};
    write_bytes(path, huge, sizeof huge);
    CHECK(ql_st_read(path, &f) == QL_EFORMAT && strstr(ql_last_error(), "larger than the file"));
    /* a NUL inside the header */
    write_st(path, "{}\0 ", 4, 0);
    CHECK(ql_st_read(path, &f) == QL_EFORMAT && strstr(ql_last_error(), "NUL"));
    unlink(path);
    CHECK(ql_st_read(path, &f) == QL_EIO && strstr(ql_last_error(), path));

    expect_bad("{bad", 0, "not valid JSON", NULL);
    expect_bad("{} trailing", 0, "not valid JSON", NULL);
    expect_bad("", 0, "not valid JSON", NULL);
    expect_bad("[1,2]", 0, "not a JSON object", NULL);
    expect_bad("\"x\"", 0, "not a JSON object", NULL);
    expect_bad("{\"w\":5}", 0, "tensor 'w'", "not a JSON object");
    expect_bad("{\"w\":{\"shape\":[1],\"data_offsets\":[0,4]}}", 4, "tensor 'w'", "missing 'dtype'");
    expect_bad("{\"w\":{\"dtype\":\"F32\",\"data_offsets\":[0,4]}}", 4, "tensor 'w'", "missing 'shape'");
    expect_bad("{\"w\":{\"dtype\":\"F32\",\"shape\":[1]}}", 4, "tensor 'w'", "missing 'data_offsets'");
    expect_bad("{\"w\":{\"dtype\":32,\"shape\":[1],\"data_offsets\":[0,4]}}", 4, "'dtype' is not a string", NULL);
    expect_bad("{" ENTRY("w", "F32", "\"1\"", "[0,4]") "}", 4, "'shape' is not an array", NULL);
    expect_bad("{" ENTRY("w", "F32", "[\"1\"]", "[0,4]") "}", 4, "shape[0] is not a number", NULL);
    expect_bad("{" ENTRY("w", "F32", "[1]", "[0]") "}", 4, "tensor 'w'", "'data_offsets' is not");
    expect_bad("{" ENTRY("w", "F32", "[1]", "[0,4,8]") "}", 8, "'data_offsets' is not", NULL);
    expect_bad("{" ENTRY("w", "F32", "[1]", "[\"0\",4]") "}", 4, "'data_offsets' is not", NULL);
    expect_bad("{" ENTRY("w", "F32", "[1]", "{\"a\":0,\"b\":4}") "}", 4, "'data_offsets' is not", NULL);
    expect_bad("{" ENTRY("w", "F32", "[1]", "[-4,4]") "}", 4, "'data_offsets' is not", NULL);
    expect_bad("{" ENTRY("w", "C64", "[1]", "[0,8]") "}", 8, "tensor 'w'", "unknown dtype 'C64'");
    expect_bad("{" ENTRY("w", "I64", "[2]", "[0,8]") "}", 8, "tensor 'w'", "shape (2) I64 needs 16 bytes");
    expect_bad("{" ENTRY("w", "f32", "[1]", "[0,4]") "}", 4, "unknown dtype 'f32'", NULL);
    expect_bad("{" ENTRY("w", "U8", "[1,1,1,1,1,1,1]", "[0,1]") "}", 1, "tensor 'w'", "rank 7");
    expect_bad("{" ENTRY("w", "U8", "[2,-1]", "[0,1]") "}", 1, "tensor 'w'", "shape[1] = -1");
    expect_bad("{" ENTRY("w", "U8", "[2.5]", "[0,1]") "}", 1, "shape[0] = 2.5", NULL);
    expect_bad("{" ENTRY("w", "U8", "[1e300]", "[0,1]") "}", 1, "shape[0]", NULL);
    expect_bad("{" ENTRY("w", "U8", "[10000000000000]", "[0,1]") "}", 1, "shape[0] = 10000000000000", "absurd");
    expect_bad("{" ENTRY("w", "U8", "[1000000000,1000000000]", "[0,1]") "}", 1, "shape[1]", "absurd");
    expect_bad("{" ENTRY("w", "U8", "[4]", "[8,4]") "}", 8, "tensor 'w'", "begin > end");
    expect_bad("{" ENTRY("w", "U8", "[400]", "[0,400]") "}", 16, "[0, 400] end beyond the data section (16 bytes)",
               NULL);
    expect_bad("{" ENTRY("fc.weight", "F32", "[10,64]", "[0,400]") "}", 400,
               "tensor 'fc.weight': data_offsets [0, 400] but shape (10,64) F32 needs 2560 bytes", NULL);
    expect_bad("{" ENTRY("a", "F32", "[2]", "[0,8]") "," ENTRY("b", "F32", "[2]", "[4,12]") "}", 12,
               "'a' [0, 8] and 'b' [4, 12] overlap", NULL);
    expect_bad("{" ENTRY("a", "F32", "[4]", "[0,16]") "," ENTRY("b", "U8", "[1]", "[8,9]") "}", 16, "overlap", NULL);
    expect_bad("{" ENTRY("a", "U8", "[4]", "[0,4]") "," ENTRY("a", "U8", "[4]", "[4,8]") "}", 8,
               "duplicate tensor name 'a'", NULL);
    expect_bad("{\"__metadata__\":\"x\"}", 0, "__metadata__ is not a JSON object", NULL);
    expect_bad("{\"__metadata__\":{\"k\":1}}", 0, "__metadata__ 'k' is not a string", NULL);
    expect_bad("{\"__metadata__\":{\"k\":{}}}", 0, "__metadata__ 'k' is not a string", NULL);
    expect_bad("{\"__metadata__\":{},\"__metadata__\":{}}", 0, "duplicate __metadata__", NULL);
    expect_bad("{\"__metadata__\":{\"k\":\"a\",\"k\":\"b\"}}", 0, "duplicate __metadata__ key 'k'", NULL);
}

/* A small valid file, for the truncation and corruption tests. */
static uint8_t *valid_file(size_t *n) {
    ql_tensor *a = ql_tensor_new4(QL_DTYPE_F32, 2, 3, 1, 1), *b = ql_tensor_new4(QL_DTYPE_S8, 1, 1, 1, 5);
    ql_st_writer *w = ql_st_writer_new();
    ql_st_writer_add(w, "a", a);
    ql_st_writer_add(w, "b", b);
    ql_st_writer_meta(w, "k", "v");
    char path[64];
    tmp_file(path, sizeof path);
    CHECK_OK(ql_st_writer_write(w, path));
    uint8_t *raw = read_bytes(path, n);
    unlink(path);
    ql_st_writer_free(w);
    ql_tensor_free(a);
    ql_tensor_free(b);
    return raw;
}

TEST(st_truncated_never_crashes) {
    size_t n = 0;
    uint8_t *raw = valid_file(&n);
    CHECK(raw && n > 40);
    if (!raw) return;
    char path[64];
    tmp_file(path, sizeof path);
    int64_t mem = ql_mem_current();
    for (size_t cut = 0; cut < n; cut++) {
        write_bytes(path, raw, cut);
        ql_st_file *f = NULL;
        ql_status s = ql_st_read(path, &f);
        CHECK_MSG(s == QL_EFORMAT && !f, "cut at %zu of %zu accepted (%s)", cut, n, ql_status_name(s));
        ql_st_free(f);
    }
    CHECK(ql_mem_current() == mem);
    free(raw);
    unlink(path);
}

TEST(st_corrupted_never_crashes) {
    size_t n = 0;
    uint8_t *raw = valid_file(&n);
    if (!raw) return;
    char path[64];
    tmp_file(path, sizeof path);
    uint8_t *c = malloc(n);
    ql_rng r;
    ql_rng_seed(&r, 7);
    int64_t mem = ql_mem_current();
    int accepted = 0;
    static const char junk[] = "{}[],:\"0123456789-.e \\";
    for (int it = 0; it < 3000; it++) {
        memcpy(c, raw, n);
        int k = 1 + (int)ql_rng_below(&r, 3);
        for (int j = 0; j < k; j++) {
            size_t at = (size_t)ql_rng_below(&r, n);
            c[at] = ql_rng_below(&r, 2) ? junk[ql_rng_below(&r, sizeof junk - 1)] : (uint8_t)ql_rng_u64(&r);
        }
        write_bytes(path, c, n);
        ql_st_file *f = NULL;
        if (ql_st_read(path, &f) == QL_OK) {
            accepted++;
            for (int i = 0; i < f->n; i++) {   /* whatever was accepted must be usable */
                ql_tensor *t = NULL;
                CHECK_OK(ql_st_tensor(f, &f->entries[i], &t));
                ql_tensor_free(t);
            }
        }
        ql_st_free(f);
    }
    CHECK(accepted > 0);   /* changes inside the data section are not errors */
    CHECK(ql_mem_current() == mem);
    free(c);
    free(raw);
    unlink(path);
}

TEST(st_writer_failure_leaves_nothing) {
    ql_tensor *a = ql_tensor_new4(QL_DTYPE_F32, 1, 1, 2, 2);
    ql_st_writer *w = ql_st_writer_new();
    CHECK_OK(ql_st_writer_add(w, "a", a));
    char tmp[256];
    /* a directory that does not exist */
    const char *bad = "/tmp/qlab_no_such_dir_4b1d/m.qlm";
    CHECK(ql_st_writer_write(w, bad) == QL_EIO);
    CHECK(strstr(ql_last_error(), bad));
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", bad, (long)getpid());
    CHECK(access(tmp, F_OK) != 0);
    /* the target is a directory: rename fails, the temp file must go, the directory stays */
    char dir[64] = "/tmp/qlab_st_dir_XXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    CHECK(ql_st_writer_write(w, dir) == QL_EIO);
    CHECK(strstr(ql_last_error(), "rename"));
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", dir, (long)getpid());
    CHECK(access(tmp, F_OK) != 0);
    struct stat st;
    CHECK(stat(dir, &st) == 0 && S_ISDIR(st.st_mode));
    rmdir(dir);
    /* overwriting a valid file replaces it whole */
    char path[64];
    tmp_file(path, sizeof path);
    CHECK_OK(ql_st_writer_write(w, path));
    ql_tensor *b = ql_tensor_new4(QL_DTYPE_U8, 1, 1, 1, 3);
    ql_st_writer *w2 = ql_st_writer_new();
    CHECK_OK(ql_st_writer_add(w2, "b", b));
    CHECK_OK(ql_st_writer_write(w2, path));
    ql_st_file *f = NULL;
    CHECK_OK(ql_st_read(path, &f));
    CHECK(f && f->n == 1 && ql_st_find(f, "b") && !ql_st_find(f, "a"));
    ql_st_free(f);
    unlink(path);
    ql_st_writer_free(w);
    ql_st_writer_free(w2);
    ql_tensor_free(a);
    ql_tensor_free(b);
}

/* PyTorch's other dtypes: F64, I64 and BOOL read and convert; values that do
 * not fit are errors naming the tensor; dtypes with no counterpart too. */
TEST(st_reads_pytorch_dtypes) {
    static const char json[] = "{" ENTRY("d", "F64", "[2]", "[0,16]") "," ENTRY("n", "I64", "[]", "[16,24]") ","
                               ENTRY("b", "BOOL", "[3]", "[24,27]") "," ENTRY("big", "I64", "[1]", "[32,40]") ","
                               ENTRY("h", "U16", "[2]", "[40,44]") "}";
    size_t hlen = sizeof json - 1, n = 8 + hlen + 44;
    uint8_t *file = calloc(1, n), *data = file + 8 + hlen;
    for (int i = 0; i < 8; i++) file[i] = (uint8_t)((uint64_t)hlen >> (8 * i));
    memcpy(file + 8, json, hlen);
    double d[2] = {0.1, -3e5};
    int64_t nbt = 12345, big = (int64_t)1 << 40;
    memcpy(data, d, 16);
    memcpy(data + 16, &nbt, 8);
    data[24] = 0; data[25] = 7; data[26] = 1;
    memcpy(data + 32, &big, 8);
    char path[64];
    tmp_file(path, sizeof path);
    write_bytes(path, file, n);
    free(file);
    ql_st_file *f = NULL;
    CHECK_OK(ql_st_read(path, &f));
    if (f) {
        ql_tensor *t = NULL;
        const ql_st_entry *e = ql_st_find(f, "d");
        CHECK(e && e->dtype == QL_DTYPE_F32 && e->converted && !strcmp(e->file_dtype, "F64"));
        CHECK_OK(ql_st_tensor(f, e, &t));
        CHECK(t && ql_f32(t)[0] == 0.1f && ql_f32(t)[1] == -3e5f);
        ql_tensor_free(t);
        CHECK_OK(ql_st_tensor(f, ql_st_find(f, "n"), &t));
        CHECK(t && t->dtype == QL_DTYPE_S32 && t->numel == 1 && ((int32_t *)t->data)[0] == 12345);
        ql_tensor_free(t);
        CHECK_OK(ql_st_tensor(f, ql_st_find(f, "b"), &t));
        CHECK(t && t->dtype == QL_DTYPE_U8 && !memcmp(t->data, "\0\1\1", 3));
        ql_tensor_free(t);
        t = (ql_tensor *)1;
        CHECK(ql_st_tensor(f, ql_st_find(f, "big"), &t) == QL_EFORMAT && !t);
        CHECK(strstr(ql_last_error(), "tensor 'big'") && strstr(ql_last_error(), "does not fit in s32"));
        CHECK(ql_st_tensor(f, ql_st_find(f, "h"), &t) == QL_EUNSUPPORTED && !t);
        CHECK(strstr(ql_last_error(), "tensor 'h' is U16"));
        ql_st_free(f);
    }
    unlink(path);
}
