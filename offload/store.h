/* offload/store.h - the expert store: one file of fixed-size records, one per
 * (block, expert), the MTP blocks included.
 *
 * Contract
 *   File layout (all integers little-endian; see struct offload_store_hdr):
 *     [0, 4096)            header: magic "NVMOEXST", version, geometry (hidden,
 *                          intermediate, block and expert counts, record size,
 *                          part offsets), config digest, index position and
 *                          checksums of the index and of the header itself
 *     [4096, records_off)  index: per record (block-major) its offset and the
 *                          XXH64 of its payload
 *     records              record k = block * nexperts + expert at
 *                          records_off + k * record_size (4 KiB aligned):
 *                          payload = w1, w1_scale, w3, w3_scale, w2, w2_scale in the
 *                          checkpoint's layout (struct core_expert_view), each
 *                          part 64-byte aligned, then a 64-byte trailer (magic,
 *                          block, expert, XXH64 of the payload), zero padding.
 *   A record is read whole into a 4 KiB aligned buffer of record_size bytes;
 *   offload_store_view() points into it, offload_store_check() verifies it.
 *
 *   Writer: records may be put in any order; finish() checks that every record
 *   was written, writes index and header last, fsyncs and renames "<path>.part"
 *   to <path>.  Until then no file named <path> exists and the .part file has
 *   no valid header, so an interrupted writer never leaves a store that looks
 *   complete.  destroy() of an unfinished writer removes the .part file.
 *
 *   Reader: open() validates the header (magic, version, checksums, geometry,
 *   digest against the expected geometry, file size vs header: a truncated store
 *   is an error naming both sizes) and keeps the index in memory; it does no
 *   record I/O.  Read-only after open, usable from any thread.  Errors name the
 *   file, the layer (or MTP block) and expert, the offset, expected vs found.
 */
#ifndef NV_OFFLOAD_STORE_H
#define NV_OFFLOAD_STORE_H

#include <stddef.h>
#include <stdint.h>
#include "core/config.h"
#include "core/err.h"
#include "core/expert_src.h"

#define OFFLOAD_STORE_MAGIC "NVMOEXST"
#define OFFLOAD_STORE_VERSION 1u
#define OFFLOAD_STORE_HDR 4096u
#define OFFLOAD_REC_MAGIC "NVMOEREC"

enum { OFFLOAD_W1, OFFLOAD_W1S, OFFLOAD_W3, OFFLOAD_W3S, OFFLOAD_W2, OFFLOAD_W2S, OFFLOAD_NPARTS };

/* Names of the six parts as tensor suffixes ("w1.weight", "w1.scale", ...). */
extern const char *const offload_part_names[OFFLOAD_NPARTS];

struct offload_store_geom {
	int nmain;                 /* main layers (num_hidden_layers); blocks >= nmain are MTP */
	int nblocks;               /* main + MTP blocks */
	int nexperts;
	int hidden, inter;         /* D, F */
	uint64_t part_off[OFFLOAD_NPARTS], part_size[OFFLOAD_NPARTS];
	uint64_t payload_size;     /* end of the last part */
	uint64_t trailer_off;      /* payload rounded up to 64 */
	uint64_t record_size;      /* trailer end rounded up to 4096 */
	uint64_t index_off, index_size, records_off, file_size;
	uint64_t digest;           /* XXH64 of the canonical geometry string */
};

/* Header on disk (first bytes of the 4 KiB header page). */
struct offload_store_hdr {
	char magic[8];
	uint32_t version, header_size;
	uint32_t nmain, nblocks, nexperts, hidden, inter, reserved;
	uint64_t digest;
	uint64_t record_size, payload_size, trailer_off;
	uint64_t part_off[OFFLOAD_NPARTS], part_size[OFFLOAD_NPARTS];
	uint64_t index_off, index_size, records_off, file_size;
	uint64_t index_xxh64;
	uint64_t header_xxh64;     /* of all bytes above */
};

struct offload_store_index_ent {
	uint64_t offset;
	uint64_t xxh64;            /* of the payload */
};

struct offload_rec_trailer {
	char magic[8];
	uint32_t block, expert;
	uint64_t xxh64;            /* of the payload */
	uint8_t reserved[40];
};

int offload_store_geom_init(struct offload_store_geom *g, int nmain, int nblocks, int nexperts,
			    int hidden, int inter, struct nv_err *e);
int offload_store_geom_from_config(const struct core_config *c, struct offload_store_geom *g,
				   struct nv_err *e);
/* Views into a record buffer laid out by g. */
void offload_store_view(const struct offload_store_geom *g, const void *record,
			struct core_expert_view *v);
/* Views at base + off[part] (a record: off = g->part_off; a slot filled from the
 * shards: wherever each part landed). */
void offload_store_view_at(const void *base, const uint64_t off[OFFLOAD_NPARTS], struct core_expert_view *v);
/* "layer 3 expert 17" / "MTP block 0 (block 43) expert 17". */
const char *offload_store_expert_name(const struct offload_store_geom *g, int block, int expert,
				      char *buf, size_t n);
/* Checkpoint tensor name of part p of (block, expert) ("layers.3.ffn.experts.17.w1.weight"). */
const char *offload_expert_tensor_name(const struct offload_store_geom *g, int block, int expert,
				       int part, char *buf, size_t n);

/* ---- writer */
struct offload_store_writer;
int offload_store_writer_create(const char *path, const struct offload_store_geom *g,
				struct offload_store_writer **out, struct nv_err *e);
/* parts[p] holds part_size[p] bytes. */
int offload_store_writer_put(struct offload_store_writer *w, int block, int expert,
			     const uint8_t *const parts[OFFLOAD_NPARTS], struct nv_err *e);
int offload_store_writer_finish(struct offload_store_writer *w, struct nv_err *e);
void offload_store_writer_destroy(struct offload_store_writer *w);

/* ---- reader */
struct offload_store;
/* expect may be NULL (inspect: accept any geometry). */
int offload_store_open(const char *path, const struct offload_store_geom *expect,
		       struct offload_store **out, struct nv_err *e);
void offload_store_close(struct offload_store *s);
const struct offload_store_geom *offload_store_geometry(const struct offload_store *s);
const char *offload_store_path(const struct offload_store *s);
uint64_t offload_store_record_offset(const struct offload_store *s, int block, int expert);
/* Verify a record read from the store: trailer magic, block and expert, checksum
 * against the trailer and the index.  NV_ECHECKSUM / NV_EFORMAT on mismatch. */
int offload_store_check(const struct offload_store *s, int block, int expert, const void *record,
			struct nv_err *e);
/* Read and check every record (preads, page cache dropped behind).  progress
 * (may be NULL) gets bytes done/total, a non-zero return stops with NV_ECANCELED;
 * bad (may be NULL) gets each bad record's error.  Returns 0 when all records are
 * good, otherwise the first error (in *e), with *nbad the number of bad records. */
int offload_store_verify(const struct offload_store *s,
			 int (*progress)(void *arg, uint64_t done, uint64_t total),
			 void (*bad)(void *arg, const struct nv_err *err), void *arg,
			 int *nbad, struct nv_err *e);

#endif
