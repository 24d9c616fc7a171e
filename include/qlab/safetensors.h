/* safetensors files: 8-byte little-endian header length, a JSON header
 * {name: {dtype, shape, data_offsets:[begin,end]}, "__metadata__": {k: "v"}},
 * then the tensor bytes. The reader trusts nothing: every size, offset and
 * dtype is checked against the file before anything is used. */
#ifndef QLAB_SAFETENSORS_H
#define QLAB_SAFETENSORS_H
#include <stddef.h>
#include <stdint.h>
#include "tensor.h"

typedef struct {
    char *name;
    ql_dtype dtype;              /* what ql_st_tensor gives: the file's own dtype, or for a dtype qlab
                                    does not hold the one it converts to (F64 -> f32, I64 -> s32,
                                    BOOL -> u8); QL_DTYPE_COUNT when none (I16, U16, U32, U64, F8_*) */
    const char *file_dtype;      /* as the file spells it: "F32", "I64", ... (static string) */
    int converted;               /* 1 when file_dtype is not dtype's own spelling */
    int ndim;
    int64_t shape[QL_MAX_DIMS];
    size_t begin, end;           /* byte offsets inside the data section */
} ql_st_entry;

typedef struct {
    int n;
    ql_st_entry *entries;        /* in file order */
    int nmeta;
    char **meta_keys, **meta_values;
    uint8_t *data;               /* the data section */
    size_t data_size;
} ql_st_file;

/* Reads and validates a whole file; errors name the file and the problem. */
ql_status ql_st_read(const char *path, ql_st_file **out);
void      ql_st_free(ql_st_file *f);
const ql_st_entry *ql_st_find(const ql_st_file *f, const char *name);
const char *ql_st_meta(const ql_st_file *f, const char *key);   /* NULL if absent */
/* Copies an entry into a new tensor of e->dtype, converting a foreign dtype
 * (an I64 value outside the s32 range, or an F64 outside f32's, is an error
 * naming the tensor). */
ql_status ql_st_tensor(const ql_st_file *f, const ql_st_entry *e, ql_tensor **out);
/* The same into memory the caller holds: numel elements of e->dtype. */
ql_status ql_st_copy(const ql_st_file *f, const ql_st_entry *e, void *dst);

typedef struct ql_st_writer ql_st_writer;
ql_st_writer *ql_st_writer_new(void);
/* Tensors are referenced, not copied: they must live until write. Names unique. */
ql_status ql_st_writer_add(ql_st_writer *w, const char *name, const ql_tensor *t);
ql_status ql_st_writer_meta(ql_st_writer *w, const char *key, const char *value);
/* Writes to path.tmp.<pid> then renames into place; nothing is left behind on failure. */
ql_status ql_st_writer_write(ql_st_writer *w, const char *path);
void      ql_st_writer_free(ql_st_writer *w);

#endif
