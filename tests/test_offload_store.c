/* tests/test_offload_store.c - expert store: geometry of the release (numbers of
 * CHECKPOINT.md §4), round trip with records written out of order, checksum
 * mismatch and truncated / missing / unfinished / foreign stores reported with
 * layer (or MTP block), expert, file and offset, verify() counting bad records. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "offload/engine.h"
#include "offload/store.h"
#include "offload_testlib.h"
#include "testutil.h"

/* small geometry: 2 layers + 1 MTP block, 5 experts, D 128, F 64 */
#define NMAIN 2
#define NBLK 3
#define NEXP 5
#define D 128
#define F 64

static uint32_t seed_of(int b, int x, int p) { return (uint32_t)(b * 1000 + x * 10 + p + 1); }

static void t_release_geometry(void)
{
	struct offload_store_geom g;
	struct nv_err e;
	TU_CHECK(offload_store_geom_init(&g, 43, 44, 256, 4096, 2048, &e) == 0, "release geometry");
	/* CHECKPOINT.md §4: w1/w3/w2 weight 4,194,304 B, scales 262,144 B, 13,369,344 B per expert */
	static const uint64_t want[6] = {4194304, 262144, 4194304, 262144, 4194304, 262144};
	for (int p = 0; p < OFFLOAD_NPARTS; p++)
		TU_CHECK(g.part_size[p] == want[p], "part %d: %llu expected %llu", p, (unsigned long long)g.part_size[p],
			 (unsigned long long)want[p]);
	TU_CHECK(g.payload_size == 13369344, "payload %llu expected 13369344", (unsigned long long)g.payload_size);
	TU_CHECK(g.record_size == 13369344 + 4096, "record %llu expected %u", (unsigned long long)g.record_size, 13369344 + 4096);
	TU_CHECK(g.record_size % 4096 == 0 && g.records_off % 4096 == 0, "alignment");
	/* 44 x 256 records: the store is 150.6 GB */
	TU_CHECK(g.file_size == g.records_off + 11264ull * g.record_size, "file size %llu", (unsigned long long)g.file_size);
	char nm[96];
	offload_store_expert_name(&g, 43, 255, nm, sizeof nm);
	TU_CHECK(!strcmp(nm, "MTP block 0 (block 43) expert 255"), "name '%s'", nm);
	offload_expert_tensor_name(&g, 43, 7, OFFLOAD_W2S, nm, sizeof nm);
	TU_CHECK(!strcmp(nm, "mtp.0.ffn.experts.7.w2.scale"), "tensor name '%s'", nm);
	offload_expert_tensor_name(&g, 3, 17, OFFLOAD_W1, nm, sizeof nm);
	TU_CHECK(!strcmp(nm, "layers.3.ffn.experts.17.w1.weight"), "tensor name '%s'", nm);
}

static int write_store(const char *path, const struct offload_store_geom *g)
{
	struct offload_store_writer *w;
	struct nv_err e;
	if (offload_store_writer_create(path, g, &w, &e)) return -1;
	uint8_t *parts[OFFLOAD_NPARTS];
	for (int p = 0; p < OFFLOAD_NPARTS; p++) parts[p] = malloc(g->part_size[p]);
	/* out of order: experts descending, blocks ascending */
	for (int x = NEXP - 1; x >= 0; x--)
		for (int b = 0; b < NBLK; b++) {
			for (int p = 0; p < OFFLOAD_NPARTS; p++)
				for (uint64_t i = 0; i < g->part_size[p]; i++) parts[p][i] = ot_byte(i, seed_of(b, x, p));
			if (offload_store_writer_put(w, b, x, (const uint8_t *const *)parts, &e)) return -1;
			struct stat st;
			TU_CHECK(stat(path, &st) != 0, "store visible under its final name before finish");
		}
	int rc = offload_store_writer_finish(w, &e);
	offload_store_writer_destroy(w);
	for (int p = 0; p < OFFLOAD_NPARTS; p++) free(parts[p]);
	return rc;
}

static void read_record(const struct offload_store *s, int b, int x, uint8_t *buf)
{
	int fd = open(offload_store_path(s), O_RDONLY);
	const struct offload_store_geom *g = offload_store_geometry(s);
	ssize_t k = pread(fd, buf, g->record_size, (off_t)offload_store_record_offset(s, b, x));
	TU_CHECK(k == (ssize_t)g->record_size, "pread %zd", k);
	close(fd);
}

static void flip_byte(const char *path, uint64_t off)
{
	int fd = open(path, O_RDWR);
	uint8_t c;
	TU_CHECK(pread(fd, &c, 1, (off_t)off) == 1, "read for flip");
	c ^= 0x10;
	TU_CHECK(pwrite(fd, &c, 1, (off_t)off) == 1, "flip");
	close(fd);
}

static int count_bad;
static void on_bad(void *arg, const struct nv_err *err) { (void)arg; (void)err; count_bad++; }

static void t_round_trip(const char *dir)
{
	char path[4300];
	snprintf(path, sizeof path, "%s/%s", dir, "experts.nvmoe");
	struct offload_store_geom g;
	struct nv_err e;
	TU_CHECK(offload_store_geom_init(&g, NMAIN, NBLK, NEXP, D, F, &e) == 0, "geometry");
	TU_CHECK(write_store(path, &g) == 0, "write store");
	char part[4400];
	snprintf(part, sizeof part, "%s.part", path);
	TU_CHECK(access(part, F_OK) != 0, ".part file left after finish");
	struct offload_store *s;
	int rc = offload_store_open(path, &g, &s, &e);
	TU_CHECK(rc == 0, "open rc %d", rc);
	if (rc) return;
	uint8_t *buf = aligned_alloc(4096, g.record_size);
	for (int b = 0; b < NBLK; b++)
		for (int x = 0; x < NEXP; x++) {
			read_record(s, b, x, buf);
			TU_CHECK(offload_store_check(s, b, x, buf, &e) == 0, "check (%d,%d)", b, x);
			struct core_expert_view v;
			offload_store_view(&g, buf, &v);
			const uint8_t *pp[6] = {v.w1, v.w1_scale, v.w3, v.w3_scale, v.w2, v.w2_scale};
			for (int p = 0; p < OFFLOAD_NPARTS; p++) {
				long long bad = ot_check(pp[p], g.part_size[p], 0, seed_of(b, x, p));
				TU_CHECK(bad < 0, "record (%d,%d) part %d byte %lld", b, x, p, bad);
			}
		}
	int nbad = -1;
	count_bad = 0;
	rc = offload_store_verify(s, NULL, on_bad, NULL, &nbad, &e);
	TU_CHECK(rc == 0 && nbad == 0 && count_bad == 0, "verify of a good store: rc %d nbad %d", rc, nbad);

	/* corrupt one payload byte of MTP block 0 expert 3 */
	uint64_t off = offload_store_record_offset(s, 2, 3);
	flip_byte(path, off + g.part_off[OFFLOAD_W2] + 5);
	read_record(s, 2, 3, buf);
	core_err_clear(&e);
	rc = offload_store_check(s, 2, 3, buf, &e);
	char msg[2048], want[64];
	core_err_str(&e, msg, sizeof msg);
	snprintf(want, sizeof want, "offset %llu", (unsigned long long)off);
	TU_CHECK(rc == NV_ECHECKSUM, "corrupt record: rc %d expected NV_ECHECKSUM", rc);
	TU_CHECK(strstr(msg, "MTP block 0 (block 2) expert 3") && strstr(msg, path) && strstr(msg, want) &&
		 strstr(msg, "checksum"), "checksum message lacks block/expert/file/offset: %s", msg);
	/* a record in the wrong place (another expert's record) */
	read_record(s, 1, 4, buf);
	rc = offload_store_check(s, 1, 3, buf, &e);
	core_err_str(&e, msg, sizeof msg);
	TU_CHECK(rc == NV_ECHECKSUM && strstr(msg, "layer 1 expert 3") && strstr(msg, "trailer names block 1 expert 4"),
		 "misplaced record: %s", msg);
	count_bad = 0;
	rc = offload_store_verify(s, NULL, on_bad, NULL, &nbad, &e);
	core_err_str(&e, msg, sizeof msg);
	TU_CHECK(rc == NV_ECHECKSUM && nbad == 1 && count_bad == 1 && strstr(msg, "expert 3"), "verify: rc %d nbad %d: %s", rc, nbad, msg);
	flip_byte(path, off + g.part_off[OFFLOAD_W2] + 5); /* repair */
	offload_store_close(s);

	/* geometry of another model */
	struct offload_store_geom g2;
	offload_store_geom_init(&g2, NMAIN, NBLK, NEXP + 1, D, F, &e);
	rc = offload_store_open(path, &g2, &s, &e);
	core_err_str(&e, msg, sizeof msg);
	TU_CHECK(rc == NV_EFORMAT && strstr(msg, "different model") && strstr(msg, "x 6 experts"), "foreign store: rc %d %s", rc, msg);

	/* truncated */
	TU_CHECK(truncate(path, (off_t)(g.file_size - 4096)) == 0, "truncate");
	rc = offload_store_open(path, &g, &s, &e);
	core_err_str(&e, msg, sizeof msg);
	snprintf(want, sizeof want, "%llu", (unsigned long long)g.file_size);
	TU_CHECK(rc == NV_EFORMAT && strstr(msg, "truncated") && strstr(msg, want) && strstr(msg, path),
		 "truncated store: rc %d %s", rc, msg);
	/* header damaged */
	TU_CHECK(truncate(path, (off_t)g.file_size) == 0, "extend");
	flip_byte(path, 40);
	rc = offload_store_open(path, &g, &s, &e);
	core_err_str(&e, msg, sizeof msg);
	TU_CHECK(rc == NV_ECHECKSUM && strstr(msg, "header checksum"), "damaged header: rc %d %s", rc, msg);
	/* missing */
	unlink(path);
	rc = offload_store_open(path, &g, &s, &e);
	core_err_str(&e, msg, sizeof msg);
	TU_CHECK(rc == NV_EMISSING && strstr(msg, path) && strstr(msg, "nvmoe convert"), "missing store: rc %d %s", rc, msg);
	free(buf);
}

/* An unfinished writer: no file under the final name; after destroy no .part. */
static void t_unfinished(const char *dir)
{
	char path[4300], part[4400];
	snprintf(path, sizeof path, "%s/unfinished.nvmoe", dir);
	snprintf(part, sizeof part, "%s.part", path);
	struct offload_store_geom g;
	struct nv_err e;
	offload_store_geom_init(&g, NMAIN, NBLK, NEXP, D, F, &e);
	struct offload_store_writer *w;
	TU_CHECK(offload_store_writer_create(path, &g, &w, &e) == 0, "create");
	uint8_t *parts[OFFLOAD_NPARTS];
	for (int p = 0; p < OFFLOAD_NPARTS; p++) parts[p] = calloc(1, g.part_size[p]);
	offload_store_writer_put(w, 0, 0, (const uint8_t *const *)parts, &e);
	int rc = offload_store_writer_finish(w, &e);
	char msg[1024];
	core_err_str(&e, msg, sizeof msg);
	TU_CHECK(rc == NV_EMISSING && strstr(msg, "layer 0 expert 1"), "finish with missing records: rc %d %s", rc, msg);
	/* the .part file has no header: opening it as a store fails on the magic */
	struct offload_store *s;
	rc = offload_store_open(part, NULL, &s, &e);
	core_err_str(&e, msg, sizeof msg);
	TU_CHECK(rc == NV_EFORMAT && strstr(msg, "magic"), "unfinished .part opened: rc %d %s", rc, msg);
	TU_CHECK(access(path, F_OK) != 0, "unfinished store exists under its final name");
	offload_store_writer_destroy(w);
	TU_CHECK(access(part, F_OK) != 0, ".part left after destroy");
	for (int p = 0; p < OFFLOAD_NPARTS; p++) free(parts[p]);
}

int main(void)
{
	char *dir = ot_tmpdir("store");
	t_release_geometry();
	t_round_trip(dir);
	t_unfinished(dir);
	ot_rm_rf(dir);
	free(dir);
	TU_DONE();
}
