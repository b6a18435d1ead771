/* tests/foundation_ckw.h - a minimal safetensors checkpoint writer for tests.
 *
 * A checkpoint is held in memory as a list of tensors (name, dtype string, shape,
 * bytes, shard) and written with config.json, shards and an index.  Tests mutate
 * the list (or the written files) to build corrupted checkpoints.  The golden
 * checkpoints are read here with cJSON directly, independently of core/ckpt.c.
 */
#ifndef NV_TESTS_FOUNDATION_CKW_H
#define NV_TESTS_FOUNDATION_CKW_H
#include <stddef.h>
#include <stdint.h>

struct ckw_tensor {
	char name[128];
	char dtype[16];
	int ndim;
	int64_t shape[4];
	int shard;
	unsigned char *data;   /* nbytes, or NULL: a hole (sparse file, reads as zeros) */
	uint64_t nbytes;
	int64_t ofs[2];        /* explicit data_offsets when ofs[0] >= 0 (no data written) */
};

struct ckw {
	char *config;          /* config.json text */
	struct ckw_tensor *t;
	size_t n, cap;
	int nshards;
	int no_index;          /* write plain shards only */
	int64_t total_size;    /* index metadata.total_size; -1 = the true sum */
	/* index entry override: map this name to this shard (wrong-shard test) */
	const char *idx_name;
	int idx_shard;
	int hdr_extra;         /* spaces after the 8-byte padding (misaligns the data) */
};

/* Synthetic checkpoint of a config (json text): every expected tensor, valid data
 * (no NaN codes, tid2eid rows distinct), release shard layout (embed; one shard per
 * block; head group; MTP).  sparse: leave data as holes (release-sized tests). */
int ckw_from_config(struct ckw *c, const char *config_json, int sparse);
/* Read a golden checkpoint directory (config.json, shards named by the index). */
int ckw_from_dir(struct ckw *c, const char *dir);
void ckw_free(struct ckw *c);
struct ckw_tensor *ckw_find(struct ckw *c, const char *name);
void ckw_remove(struct ckw *c, const char *name);
/* Append a tensor with zeroed data. */
struct ckw_tensor *ckw_add(struct ckw *c, const char *name, const char *dtype, int ndim, const int64_t *shape,
			   int shard);
uint64_t ckw_dtype_size(const char *dtype);
/* data_offsets begin of a tensor as ckw_write lays it out. */
uint64_t ckw_offset_of(const struct ckw *c, const char *name);
char *ckw_shard_name(const struct ckw *c, int shard, char *buf, size_t n);
/* Write everything into dir (created if needed).  0 ok. */
int ckw_write(const struct ckw *c, const char *dir);
/* mkdtemp under $TMPDIR; rm -rf. */
char *ckw_tmpdir(void);
void ckw_rmrf(const char *dir);

#endif
