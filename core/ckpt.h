/* core/ckpt.h - checkpoint reader: safetensors shards, the index, loader checks.
 *
 * Contract
 *   core_ckpt_open() opens a model directory: config.json (core/config.h), then
 *   model.safetensors.index.json (or, without an index, every *.safetensors file in
 *   the directory), parses every shard header and performs the loader checks 1-14
 *   of CHECKPOINT.md §7 (15, the full NaN scan, with opts.full_scan), stopping at the
 *   first fatal problem with a message naming the file, the tensor and expected vs
 *   found.  Warnings (check 13, duplicate tid2eid ids, extra tensors with
 *   opts.allow_extra) are collected and readable with core_ckpt_warning().
 *   A directory converted by `nvmoe convert` holds an expert store file
 *   (CORE_STORE_FILE); then routed-expert tensors are expected in the store, not
 *   in the shards, and core_ckpt_has_store() says so.
 *
 *   Tensor data: each shard is mmapped read-only; core_tensor.data is a zero-copy
 *   view, except when a tensor is not aligned to its element size (check 16), where
 *   it points to an aligned private copy.  core_ckpt_pread() reads bytes with pread
 *   for callers that stream (the offload engine).
 *
 *   Lifetime: all tensor pointers and names are owned by the core_ckpt and valid
 *   until core_ckpt_close() (which accepts NULL).  After open, the object is
 *   read-only and may be used from any thread.
 */
#ifndef NV_CORE_CKPT_H
#define NV_CORE_CKPT_H

#include <stddef.h>
#include <stdint.h>
#include "err.h"
#include "config.h"

#define CORE_STORE_FILE "experts.nvmoe"

enum core_dtype {
	CORE_DT_BF16, CORE_DT_F32, CORE_DT_F8_E4M3, CORE_DT_F8_E8M0, CORE_DT_I8, CORE_DT_I64,
	CORE_DT_F16, CORE_DT_I32, CORE_DT_U8,
	CORE_DT_COUNT
};
size_t core_dtype_size(enum core_dtype t);
const char *core_dtype_name(enum core_dtype t); /* safetensors spelling, e.g. "F8_E4M3" */
int core_dtype_parse(const char *s, size_t n, enum core_dtype *out); /* 0 or NV_EINVAL */

#define CORE_MAX_DIMS 4

struct core_tensor {
	const char *name;
	enum core_dtype dtype;
	int ndim;
	int64_t shape[CORE_MAX_DIMS];
	uint64_t nbytes;
	int shard;             /* index of the shard file */
	uint64_t file_offset;  /* absolute byte offset of the data in the shard */
	const void *data;      /* read-only view (see contract) */
};

struct core_ckpt_opts {
	int allow_extra;  /* unexpected tensors become a warning instead of an error */
	int full_scan;    /* check 15: scan all data for NaN codes */
	int no_mmap;      /* headers only: data pointers stay NULL (plan, inspect of huge sparse files) */
};

struct core_ckpt;

int core_ckpt_open(const char *dir, const struct core_ckpt_opts *opts,
		   struct core_ckpt **out, struct nv_err *e);
void core_ckpt_close(struct core_ckpt *ck);

const char *core_ckpt_dir(const struct core_ckpt *ck);
const struct core_config *core_ckpt_config(const struct core_ckpt *ck);
size_t core_ckpt_ntensors(const struct core_ckpt *ck);
const struct core_tensor *core_ckpt_tensor(const struct core_ckpt *ck, size_t i);
const struct core_tensor *core_ckpt_find(const struct core_ckpt *ck, const char *name);
int core_ckpt_nshards(const struct core_ckpt *ck);
const char *core_ckpt_shard_path(const struct core_ckpt *ck, int shard);
int core_ckpt_has_store(const struct core_ckpt *ck);
size_t core_ckpt_nwarnings(const struct core_ckpt *ck);
const char *core_ckpt_warning(const struct core_ckpt *ck, size_t i);

/* Read n bytes at offset off inside tensor t (short reads handled). */
int core_ckpt_pread(const struct core_ckpt *ck, const struct core_tensor *t, uint64_t off,
		    void *buf, size_t n, struct nv_err *e);

/* Parse one safetensors header (the N JSON bytes after the 8-byte length) against a
 * file of file_size bytes; checks 5-10 that concern one file.  On success *out is
 * an array of *n tensors (names owned by *arena, free both with free()).  Exposed
 * for the fuzzer and for tools. */
int core_st_parse_header(const char *json, size_t n, uint64_t file_size, const char *fname,
			 struct core_tensor **out, size_t *ntens, char **arena, struct nv_err *e);

/* ---- expected tensor set (CHECKPOINT.md §4), generated from the config ---- */

struct core_tensor_spec {
	char name[96];
	enum core_dtype dtype;
	int ndim;
	int64_t shape[CORE_MAX_DIMS];
	int block;   /* block index (MTP block = num_hidden_layers + j), -1 for top level */
	int expert;  /* routed expert id, -1 otherwise */
};

/* All tensors a checkpoint of config c must hold, in a stable order (top level,
 * then block by block; experts last within a block).  *out is malloc'ed. */
int core_expected_tensors(const struct core_config *c, struct core_tensor_spec **out,
			  size_t *n, struct nv_err *e);
uint64_t core_spec_nbytes(const struct core_tensor_spec *s);

#endif
