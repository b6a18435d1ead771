/* cli/backend.c - the kernel backend of a command, from --backend and --threads. */
#include <string.h>

#include "cli.h"
#include "kernels/kern.h"

struct kern *cli_backend_create(const struct cli_opts *o, struct nv_err *e)
{
	if (o->backend && !strcmp(o->backend, "cuda")) {
		core_err_set(e, NV_EUNSUPPORTED, "backend", "cuda", "use --backend cpu",
			     "the CUDA backend is not available in this build");
		return NULL;
	}
	struct kern_cpu_opts co = { .threads = o->threads, .isa = KERN_CPU_ISA_AUTO };
	struct kern *k = kern_cpu_create_opts(&co);
	if (!k)
		core_err_set(e, NV_ENOMEM, "backend", "cpu", "try fewer --threads",
			     "cannot create the CPU backend with %d threads (memory or thread creation)",
			     o->threads);
	return k;
}
