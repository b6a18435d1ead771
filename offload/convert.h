/* offload/convert.h - `nvmoe convert`: HF checkpoint -> expert store + resident pack.
 *
 * Contract
 *   offload_convert() opens the HF checkpoint `src` with the loader checks 1-14,
 *   and writes into `out`:
 *     experts.nvmoe                 every routed expert of every block, the MTP
 *                                   blocks included (offload/store.h)
 *     model-NNNNN-of-NNNNN.safetensors + model.safetensors.index.json
 *                                   every other tensor, unchanged (so core/ckpt
 *                                   opens the directory; routed experts then come
 *                                   from the store)
 *     config.json, generation_config.json, tokenizer files (copied when present)
 *   Every byte copied is scanned for NaN codes (E8M0 0xFF, E4M3 0x7F/0xFF,
 *   BF16/F32 NaN or Inf); the first one stops the conversion with the tensor, the
 *   index and the source file.
 *   Atomicity: everything is written into a sibling directory "<out>.tmp-XXXXXX"
 *   (marked with .nvmoe-convert-partial holding the writer's pid), fsynced, and
 *   renamed to <out> at the end; inside it the store is written as
 *   experts.nvmoe.part with its header last.  An interrupted conversion leaves
 *   only the .tmp directory (removed by the next convert into the same place
 *   once its writer is dead), never a complete-looking <out>.  An existing <out>
 *   is refused unless opts.force, and <out> may never be, or contain, <src>.
 *   progress() (may be NULL) is called often from the caller's thread; a non-zero
 *   return cancels (NV_ECANCELED, the temporary directory removed).  note() gets
 *   informational lines.  Only cli/ prints.
 */
#ifndef NV_OFFLOAD_CONVERT_H
#define NV_OFFLOAD_CONVERT_H

#include <stdint.h>
#include "core/err.h"

struct offload_convert_opts {
	int force;             /* replace an existing <out> */
	int allow_extra;       /* tensors the config does not use are copied (with a warning) */
	uint64_t shard_bytes;  /* resident shard size limit (0 = 4 GiB) */
	int (*progress)(void *arg, uint64_t done, uint64_t total, uint64_t recs, uint64_t nrecs);
	void (*note)(void *arg, const char *msg);
	void *arg;
};

struct offload_convert_result {
	uint64_t store_bytes, resident_bytes;
	uint64_t nrecords, ntensors, nshards;
};

int offload_convert(const char *src, const char *out, const struct offload_convert_opts *o,
		    struct offload_convert_result *res, struct nv_err *e);

#endif
