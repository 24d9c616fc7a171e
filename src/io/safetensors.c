/* safetensors reader and writer. The file is untrusted: every length,
 * offset, shape and dtype is checked against the bytes present before use. */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cJSON.h>
#include "qlab/alloc.h"
#include "qlab/safetensors.h"

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "safetensors data is little-endian; this code copies it as is"
#endif

#define MAX_DIM ((int64_t)1 << 40)      /* one dimension; more is a lie */
#define MAX_NUMEL ((int64_t)1 << 48)

/* safetensors spells dtypes in upper case only (F32, I8, ...). Besides
 * qlab's own, PyTorch writes these; some convert on reading. */
static const struct { const char *name; int size; ql_dtype to; } foreign[] = {
    {"F64", 8, QL_DTYPE_F32}, {"I64", 8, QL_DTYPE_S32}, {"BOOL", 1, QL_DTYPE_U8},
    {"I16", 2, QL_DTYPE_COUNT}, {"U16", 2, QL_DTYPE_COUNT}, {"U32", 4, QL_DTYPE_COUNT},
    {"U64", 8, QL_DTYPE_COUNT}, {"F8_E4M3", 1, QL_DTYPE_COUNT}, {"F8_E5M2", 1, QL_DTYPE_COUNT},
};
#define NFOREIGN (int)(sizeof foreign / sizeof *foreign)

// -> e->dtype, file_dtype, converted and the file's element size; -1 if unknown
static int st_dtype(const char *s, ql_st_entry *e, size_t *elem) {
    for (int i = 0; i < QL_DTYPE_COUNT; i++)
        if (!strcmp(s, ql_dtype_st_name((ql_dtype)i))) {
            e->dtype = (ql_dtype)i;
            e->file_dtype = ql_dtype_st_name((ql_dtype)i);
            e->converted = 0;
            *elem = ql_dtype_size((ql_dtype)i);
            return 0;
        }
    for (int i = 0; i < NFOREIGN; i++)
        if (!strcmp(s, foreign[i].name)) {
            e->dtype = foreign[i].to;
            e->file_dtype = foreign[i].name;
            e->converted = 1;
            *elem = (size_t)foreign[i].size;
            return 0;
        }
    return -1;
}

/* A JSON number that is an exact non-negative integer below 2^53. */
static int json_uint(const cJSON *j, int64_t *out) {
    if (!cJSON_IsNumber(j)) return -1;
    double d = j->valuedouble;
    if (!isfinite(d) || d < 0 || d != floor(d) || d >= 9007199254740992.0) return -1;
    *out = (int64_t)d;
    return 0;
}

static ql_status parse_entry(const char *path, const cJSON *j, size_t data_size, ql_st_entry *e) {
    const char *nm = e->name;
    if (!cJSON_IsObject(j)) return ql_error(QL_EFORMAT, "%s: tensor '%s': entry is not a JSON object", path, nm);

    const cJSON *dt = cJSON_GetObjectItemCaseSensitive(j, "dtype");
    if (!dt) return ql_error(QL_EFORMAT, "%s: tensor '%s': missing 'dtype'", path, nm);
    if (!cJSON_IsString(dt)) return ql_error(QL_EFORMAT, "%s: tensor '%s': 'dtype' is not a string", path, nm);
    size_t elem;
    if (st_dtype(dt->valuestring, e, &elem))
        return ql_error(QL_EFORMAT, "%s: tensor '%s': unknown dtype '%s' (known: F32 F16 BF16 U8 I8 I32, "
                        "and F64 I64 BOOL converted on reading)", path, nm, dt->valuestring);

    const cJSON *sh = cJSON_GetObjectItemCaseSensitive(j, "shape");
    if (!sh) return ql_error(QL_EFORMAT, "%s: tensor '%s': missing 'shape'", path, nm);
    if (!cJSON_IsArray(sh)) return ql_error(QL_EFORMAT, "%s: tensor '%s': 'shape' is not an array", path, nm);
    int rank = cJSON_GetArraySize(sh);
    if (rank > QL_MAX_DIMS)
        return ql_error(QL_EFORMAT, "%s: tensor '%s': rank %d exceeds the maximum %d", path, nm, rank, QL_MAX_DIMS);
    e->ndim = rank;
    int64_t numel = 1;
    int k = 0;
    for (const cJSON *d = sh->child; d; d = d->next, k++) {
        int64_t v;
        if (json_uint(d, &v)) {
            if (cJSON_IsNumber(d))
                return ql_error(QL_EFORMAT, "%s: tensor '%s': shape[%d] = %g is not a non-negative integer",
                                path, nm, k, d->valuedouble);
            return ql_error(QL_EFORMAT, "%s: tensor '%s': shape[%d] is not a number", path, nm, k);
        }
        if (v > MAX_DIM || (v && numel > MAX_NUMEL / v))
            return ql_error(QL_EFORMAT, "%s: tensor '%s': shape[%d] = %lld is absurdly large", path, nm, k,
                            (long long)v);
        e->shape[k] = v;
        numel *= v;
    }

    const cJSON *off = cJSON_GetObjectItemCaseSensitive(j, "data_offsets");
    if (!off) return ql_error(QL_EFORMAT, "%s: tensor '%s': missing 'data_offsets'", path, nm);
    int64_t b, en;
    if (!cJSON_IsArray(off) || cJSON_GetArraySize(off) != 2 || json_uint(off->child, &b) ||
        json_uint(off->child->next, &en))
        return ql_error(QL_EFORMAT, "%s: tensor '%s': 'data_offsets' is not an array of two non-negative integers",
                        path, nm);
    if (b > en)
        return ql_error(QL_EFORMAT, "%s: tensor '%s': data_offsets [%lld, %lld] has begin > end", path, nm,
                        (long long)b, (long long)en);
    if ((uint64_t)en > data_size)
        return ql_error(QL_EFORMAT,
                        "%s: tensor '%s': data_offsets [%lld, %lld] end beyond the data section (%zu bytes)", path,
                        nm, (long long)b, (long long)en, data_size);
    e->begin = (size_t)b;
    e->end = (size_t)en;
    size_t need = (size_t)numel * elem;
    if (e->end - e->begin != need) {
        char s[160];
        return ql_error(QL_EFORMAT, "%s: tensor '%s': data_offsets [%lld, %lld] but shape %s %s needs %zu bytes",
                        path, nm, (long long)b, (long long)en, ql_shape_str(e->ndim, e->shape, s, sizeof s),
                        e->file_dtype, need);
    }
    return QL_OK;
}

static ql_status parse_meta(const char *path, const cJSON *j, ql_st_file *f) {
    if (!cJSON_IsObject(j)) return ql_error(QL_EFORMAT, "%s: __metadata__ is not a JSON object", path);
    int m = cJSON_GetArraySize(j);
    f->meta_keys = ql_calloc(sizeof(char *) * (size_t)(m ? m : 1));
    f->meta_values = ql_calloc(sizeof(char *) * (size_t)(m ? m : 1));
    if (!f->meta_keys || !f->meta_values) return QL_ENOMEM;
    for (const cJSON *c = j->child; c; c = c->next) {
        if (!cJSON_IsString(c)) return ql_error(QL_EFORMAT, "%s: __metadata__ '%s' is not a string", path, c->string);
        for (int i = 0; i < f->nmeta; i++)
            if (!strcmp(f->meta_keys[i], c->string))
                return ql_error(QL_EFORMAT, "%s: duplicate __metadata__ key '%s'", path, c->string);
        f->meta_keys[f->nmeta] = ql_strdup(c->string);
        f->meta_values[f->nmeta] = ql_strdup(c->valuestring);
        f->nmeta++;
        if (!f->meta_keys[f->nmeta - 1] || !f->meta_values[f->nmeta - 1]) return QL_ENOMEM;
    }
    return QL_OK;
}

static int cmp_name(const void *a, const void *b) {
    return strcmp((*(ql_st_entry *const *)a)->name, (*(ql_st_entry *const *)b)->name);
}

static int cmp_begin(const void *a, const void *b) {
    const ql_st_entry *x = *(ql_st_entry *const *)a, *y = *(ql_st_entry *const *)b;
    return x->begin < y->begin ? -1 : x->begin > y->begin ? 1 : (x->end > y->end) - (x->end < y->end);
}

/* Duplicate names and overlapping byte ranges, by sorting (large models have many tensors). */
static ql_status check_entries(const char *path, ql_st_file *f) {
    if (f->n < 2) return QL_OK;
    ql_st_entry **p = ql_malloc(sizeof *p * (size_t)f->n);
    if (!p) return QL_ENOMEM;
    for (int i = 0; i < f->n; i++) p[i] = &f->entries[i];
    ql_status s = QL_OK;
    qsort(p, (size_t)f->n, sizeof *p, cmp_name);
    for (int i = 1; i < f->n && !s; i++)
        if (!strcmp(p[i - 1]->name, p[i]->name))
            s = ql_error(QL_EFORMAT, "%s: duplicate tensor name '%s'", path, p[i]->name);
    qsort(p, (size_t)f->n, sizeof *p, cmp_begin);
    const ql_st_entry *prev = NULL;   /* the non-empty range reaching furthest so far */
    for (int i = 0; i < f->n && !s; i++) {
        if (p[i]->begin == p[i]->end) continue;
        if (prev && p[i]->begin < prev->end)
            s = ql_error(QL_EFORMAT, "%s: tensors '%s' [%zu, %zu] and '%s' [%zu, %zu] overlap", path, prev->name,
                         prev->begin, prev->end, p[i]->name, p[i]->begin, p[i]->end);
        if (!prev || p[i]->end > prev->end) prev = p[i];
    }
    ql_free(p);
    return s;
}

static ql_status parse_header(const char *path, const char *hdr, ql_st_file *f) {
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithOpts(hdr, &end, 1);
    if (!root) {
        size_t at = end && end >= hdr ? (size_t)(end - hdr) : 0;
        return ql_error(QL_EFORMAT, "%s: header is not valid JSON (error near byte %zu)", path, at);
    }
    ql_status s = QL_OK;
    if (!cJSON_IsObject(root)) { s = ql_error(QL_EFORMAT, "%s: header is not a JSON object", path); goto done; }
    int nmeta = 0, n = 0;
    for (const cJSON *c = root->child; c; c = c->next) {
        if (!strcmp(c->string, "__metadata__")) nmeta++;
        else n++;
    }
    if (nmeta > 1) { s = ql_error(QL_EFORMAT, "%s: duplicate __metadata__ entry", path); goto done; }
    f->entries = ql_calloc(sizeof *f->entries * (size_t)(n ? n : 1));
    if (!f->entries) { s = QL_ENOMEM; goto done; }
    for (const cJSON *c = root->child; c && !s; c = c->next) {
        if (!strcmp(c->string, "__metadata__")) { s = parse_meta(path, c, f); continue; }
        ql_st_entry *e = &f->entries[f->n];
        if (!(e->name = ql_strdup(c->string))) { s = QL_ENOMEM; break; }
        f->n++;
        s = parse_entry(path, c, f->data_size, e);
    }
    if (!s) s = check_entries(path, f);
done:
    cJSON_Delete(root);
    return s;
}

static ql_status read_all(FILE *fp, const char *path, void *buf, size_t n, const char *what) {
    if (n && fread(buf, 1, n, fp) != n)
        return ql_error(ferror(fp) ? QL_EIO : QL_EFORMAT, "%s: could not read the %s (%zu bytes)%s", path, what, n,
                        ferror(fp) ? "" : ": file shrank while reading");
    return QL_OK;
}

ql_status ql_st_read(const char *path, ql_st_file **out) {
    *out = NULL;
    FILE *fp = fopen(path, "rb");
    if (!fp) return ql_error(QL_EIO, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fileno(fp), &st) != 0 || !S_ISREG(st.st_mode)) {
        fclose(fp);
        return ql_error(QL_EIO, "%s: not a regular file", path);
    }
    uint64_t size = (uint64_t)st.st_size;
    char *hdr = NULL;
    ql_st_file *f = NULL;
    ql_status s = QL_OK;
    uint8_t lenb[8];
    if (size < 8) {
        s = ql_error(QL_EFORMAT, "%s: file is %llu bytes, shorter than the 8-byte header length", path,
                     (unsigned long long)size);
        goto fail;
    }
    if ((s = read_all(fp, path, lenb, 8, "header length"))) goto fail;
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--) hlen = hlen << 8 | lenb[i];
    if (hlen > size - 8) {
        s = ql_error(QL_EFORMAT, "%s: header length %llu larger than the file (%llu bytes)", path,
                     (unsigned long long)hlen, (unsigned long long)size);
        goto fail;
    }
    if (!(hdr = ql_malloc(hlen + 1)) || !(f = ql_calloc(sizeof *f))) { s = QL_ENOMEM; goto fail; }
    if ((s = read_all(fp, path, hdr, hlen, "header"))) goto fail;
    hdr[hlen] = 0;
    if (memchr(hdr, 0, hlen)) { s = ql_error(QL_EFORMAT, "%s: header contains a NUL byte", path); goto fail; }
    f->data_size = size - 8 - hlen;
    if (!(f->data = ql_malloc(f->data_size ? f->data_size : 1))) { s = QL_ENOMEM; goto fail; }
    if ((s = read_all(fp, path, f->data, f->data_size, "data section"))) goto fail;
    if ((s = parse_header(path, hdr, f))) goto fail;
    fclose(fp);
    ql_free(hdr);
    *out = f;
    return QL_OK;
fail:
    fclose(fp);
    ql_free(hdr);
    ql_st_free(f);
    return s;
}

void ql_st_free(ql_st_file *f) {
    if (!f) return;
    for (int i = 0; i < f->n; i++) ql_free(f->entries[i].name);
    ql_free(f->entries);
    for (int i = 0; i < f->nmeta; i++) { ql_free(f->meta_keys[i]); ql_free(f->meta_values[i]); }
    ql_free(f->meta_keys);
    ql_free(f->meta_values);
    ql_free(f->data);
    ql_free(f);
}

const ql_st_entry *ql_st_find(const ql_st_file *f, const char *name) {
    for (int i = 0; i < f->n; i++)
        if (!strcmp(f->entries[i].name, name)) return &f->entries[i];
    return NULL;
}

const char *ql_st_meta(const ql_st_file *f, const char *key) {
    for (int i = 0; i < f->nmeta; i++)
        if (!strcmp(f->meta_keys[i], key)) return f->meta_values[i];
    return NULL;
}

ql_status ql_st_copy(const ql_st_file *f, const ql_st_entry *e, void *dst) {
    const uint8_t *src = f->data + e->begin;
    size_t bytes = e->end - e->begin;
    QL_ASSERT(e->end <= f->data_size);
    if (e->dtype == QL_DTYPE_COUNT)
        return ql_error(QL_EUNSUPPORTED, "tensor '%s' is %s, which qlab cannot hold (it reads F32 F16 BF16 U8 I8 "
                        "I32, and F64 I64 BOOL converted)", e->name, e->file_dtype);
    if (!e->converted) { if (bytes) memcpy(dst, src, bytes); return QL_OK; }
    if (!strcmp(e->file_dtype, "BOOL")) {
        for (size_t i = 0; i < bytes; i++) ((uint8_t *)dst)[i] = src[i] != 0;
        return QL_OK;
    }
    size_t n = bytes / 8;   /* F64 and I64: little-endian, like the file */
    for (size_t i = 0; i < n; i++) {
        if (e->dtype == QL_DTYPE_F32) {
            double d;
            memcpy(&d, src + 8 * i, 8);
            if (isfinite(d) && fabs(d) > FLT_MAX)
                return ql_error(QL_EFORMAT, "tensor '%s': F64 value %g at %zu is outside the f32 range", e->name, d, i);
            ((float *)dst)[i] = (float)d;
        } else {
            int64_t v;
            memcpy(&v, src + 8 * i, 8);
            if (v < INT32_MIN || v > INT32_MAX)
                return ql_error(QL_EFORMAT, "tensor '%s': I64 value %lld at %zu does not fit in s32", e->name,
                                (long long)v, i);
            ((int32_t *)dst)[i] = (int32_t)v;
        }
    }
    return QL_OK;
}

ql_status ql_st_tensor(const ql_st_file *f, const ql_st_entry *e, ql_tensor **out) {
    *out = NULL;
    if (e->dtype == QL_DTYPE_COUNT) return ql_st_copy(f, e, NULL);   /* the error */
    ql_tensor *t = ql_tensor_new(e->dtype, e->ndim, e->shape);
    if (!t) return ql_error_prefix(QL_ENOMEM, "tensor '%s'", e->name);
    ql_status st = ql_st_copy(f, e, t->data);
    if (st != QL_OK) { ql_tensor_free(t); return st; }
    *out = t;
    return QL_OK;
}

/* ---- writer ---- */

struct ql_st_writer {
    int n, cap;
    char **names;
    const ql_tensor **tensors;    /* referenced, not owned */
    int nmeta, mcap;
    char **keys, **values;
};

ql_st_writer *ql_st_writer_new(void) { return ql_calloc(sizeof(ql_st_writer)); }

void ql_st_writer_free(ql_st_writer *w) {
    if (!w) return;
    for (int i = 0; i < w->n; i++) ql_free(w->names[i]);
    for (int i = 0; i < w->nmeta; i++) { ql_free(w->keys[i]); ql_free(w->values[i]); }
    ql_free(w->names);
    ql_free(w->tensors);
    ql_free(w->keys);
    ql_free(w->values);
    ql_free(w);
}

/* Grows two parallel pointer arrays together. */
static ql_status grow(void ***a, void ***b, int *cap, int n) {
    if (n < *cap) return QL_OK;
    int nc = *cap ? *cap * 2 : 16;
    void **na = ql_realloc(*a, sizeof(void *) * (size_t)nc);
    if (!na) return QL_ENOMEM;
    *a = na;
    void **nb = ql_realloc(*b, sizeof(void *) * (size_t)nc);
    if (!nb) return QL_ENOMEM;
    *b = nb;
    *cap = nc;
    return QL_OK;
}

ql_status ql_st_writer_add(ql_st_writer *w, const char *name, const ql_tensor *t) {
    if (!name || !*name || !t) return ql_error(QL_EINVAL, "safetensors writer: empty tensor name or NULL tensor");
    if (!strcmp(name, "__metadata__")) return ql_error(QL_EINVAL, "safetensors writer: '__metadata__' is reserved");
    if ((unsigned)t->dtype >= QL_DTYPE_COUNT || t->ndim < 0 || t->ndim > QL_MAX_DIMS ||
        t->numel != ql_shape_numel(t->ndim, t->shape) || (t->numel && !t->data))
        return ql_error(QL_EINVAL, "safetensors writer: tensor '%s' is inconsistent (dtype, rank or data)", name);
    for (int i = 0; i < w->n; i++)
        if (!strcmp(w->names[i], name))
            return ql_error(QL_EINVAL, "safetensors writer: duplicate tensor name '%s'", name);
    QL_TRY(grow((void ***)&w->names, (void ***)&w->tensors, &w->cap, w->n));
    if (!(w->names[w->n] = ql_strdup(name))) return QL_ENOMEM;
    w->tensors[w->n++] = t;
    return QL_OK;
}

/* Setting a key twice replaces its value. */
ql_status ql_st_writer_meta(ql_st_writer *w, const char *key, const char *value) {
    if (!key || !value) return ql_error(QL_EINVAL, "safetensors writer: NULL metadata key or value");
    char *v = ql_strdup(value);
    if (!v) return QL_ENOMEM;
    for (int i = 0; i < w->nmeta; i++)
        if (!strcmp(w->keys[i], key)) { ql_free(w->values[i]); w->values[i] = v; return QL_OK; }
    ql_status s = grow((void ***)&w->keys, (void ***)&w->values, &w->mcap, w->nmeta);
    char *k = s ? NULL : ql_strdup(key);
    if (!k) { ql_free(v); return QL_ENOMEM; }
    w->keys[w->nmeta] = k;
    w->values[w->nmeta++] = v;
    return QL_OK;
}

/* The JSON header, padded with spaces so the data section starts at a multiple of 8. */
static char *build_header(const ql_st_writer *w, size_t *len) {
    cJSON *root = cJSON_CreateObject(), *ok = root;
    if (root && w->nmeta) {
        cJSON *m = cJSON_AddObjectToObject(root, "__metadata__");
        for (int i = 0; m && i < w->nmeta; i++) ok = cJSON_AddStringToObject(m, w->keys[i], w->values[i]) ? ok : NULL;
        if (!m) ok = NULL;
    }
    size_t off = 0;
    for (int i = 0; ok && i < w->n; i++) {
        const ql_tensor *t = w->tensors[i];
        double shape[QL_MAX_DIMS], offs[2];
        for (int k = 0; k < t->ndim; k++) shape[k] = (double)t->shape[k];
        offs[0] = (double)off;
        off += ql_tensor_bytes(t);
        offs[1] = (double)off;
        cJSON *e = cJSON_AddObjectToObject(root, w->names[i]);
        cJSON *sh = cJSON_CreateDoubleArray(shape, t->ndim);
        cJSON *of = cJSON_CreateDoubleArray(offs, 2);
        if (!sh || !of || !e || !cJSON_AddStringToObject(e, "dtype", ql_dtype_st_name(t->dtype))) {
            cJSON_Delete(sh); cJSON_Delete(of); ok = NULL; break;
        }
        cJSON_AddItemToObject(e, "shape", sh);
        cJSON_AddItemToObject(e, "data_offsets", of);
    }
    char *json = ok ? cJSON_PrintUnformatted(root) : NULL;
    cJSON_Delete(root);
    if (!json) { ql_error(QL_ENOMEM, "safetensors writer: out of memory building the header"); return NULL; }
    size_t n = strlen(json), pad = (8 - (8 + n) % 8) % 8;
    char *h = ql_malloc(n + pad + 1);
    if (h) {
        memcpy(h, json, n);
        memset(h + n, ' ', pad);
        h[n + pad] = 0;
        *len = n + pad;
    }
    cJSON_free(json);
    return h;
}

static int write_full(int fd, const void *buf, size_t n) {
    const char *p = buf;
    while (n) {
        ssize_t r = write(fd, p, n > ((size_t)1 << 30) ? ((size_t)1 << 30) : n);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) return -1;
        p += r;
        n -= (size_t)r;
    }
    return 0;
}

/* Makes the rename itself durable; best effort, errors ignored. */
static void sync_dir(const char *path) {
    char *copy = strdup(path);
    if (!copy) return;
    int fd = open(dirname(copy), O_RDONLY | O_DIRECTORY);
    if (fd >= 0) { fsync(fd); close(fd); }
    free(copy);
}

ql_status ql_st_writer_write(ql_st_writer *w, const char *path) {
    size_t hlen = 0;
    char *hdr = build_header(w, &hlen);
    if (!hdr) return QL_ENOMEM;
    size_t tn = strlen(path) + 32;
    char *tmp = ql_malloc(tn);
    if (!tmp) { ql_free(hdr); return QL_ENOMEM; }
    snprintf(tmp, tn, "%s.tmp.%ld", path, (long)getpid());
    ql_status s = QL_OK;
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        s = ql_error(QL_EIO, "%s: cannot create %s: %s", path, tmp, strerror(errno));
        goto out;
    }
    uint8_t lenb[8];
    for (int i = 0; i < 8; i++) lenb[i] = (uint8_t)((uint64_t)hlen >> (8 * i));
    int bad = write_full(fd, lenb, 8) || write_full(fd, hdr, hlen);
    for (int i = 0; i < w->n && !bad; i++)
        bad = write_full(fd, w->tensors[i]->data, ql_tensor_bytes(w->tensors[i]));
    if (bad || fsync(fd) != 0) {
        s = ql_error(QL_EIO, "%s: writing %s failed: %s", path, tmp, strerror(errno));
        close(fd);
    } else if (close(fd) != 0) {
        s = ql_error(QL_EIO, "%s: closing %s failed: %s", path, tmp, strerror(errno));
    } else if (rename(tmp, path) != 0) {
        s = ql_error(QL_EIO, "%s: cannot rename %s into place: %s", path, tmp, strerror(errno));
    } else {
        sync_dir(path);
    }
    if (s) unlink(tmp);
out:
    ql_free(tmp);
    ql_free(hdr);
    return s;
}
