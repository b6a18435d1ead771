/* cli/backend.c - `--backend cpu|cuda|auto`: the one place that creates a kernel
 * backend for the commands (auto = CUDA when a device is present, else CPU). */
#include <errno.h>
#include <string.h>

#include "cli.h"
#include "kernels/kern.h"
#ifdef NVMOE_HAVE_CUDA
#include "kernels/cuda/cuda.h"
#endif

int cli_backend_create(const struct cli_opts *o, struct kern **out, struct nv_err *e)
{
	const char *b = o->backend ? o->backend : "auto";
	*out = NULL;
	if (!strcmp(b, "cuda") || !strcmp(b, "auto")) {
#ifdef NVMOE_HAVE_CUDA
		if (!strcmp(b, "cuda") || kern_cuda_device_count() > 0) {
			char msg[256];
			int rc = kern_cuda_create(0, out, msg, sizeof msg);
			if (rc)
				return core_err_set(e, rc == -ENOMEM ? NV_ENOMEM : NV_EUNSUPPORTED, "--backend", b,
						    "use --backend cpu", "%s", msg);
			return 0;
		}
#else
		if (!strcmp(b, "cuda"))
			return core_err_set(e, NV_EUNSUPPORTED, "--backend", "cuda",
					    "rebuild with CUDA (nvcc found at configure time) or use --backend cpu",
					    "this nvmoe was built without the CUDA backend");
#endif
	}
	*out = kern_cpu_create();
	if (!*out) return core_err_set(e, NV_ENOMEM, "--backend", "cpu", NULL, "out of memory");
	return 0;
}

int cli_backend_check_experts(const struct kern *k, const struct core_expert_src *src, struct nv_err *e)
{
	if (!src || !strcmp(k->name, "cpu")) return 0;
	return core_err_set(e, NV_EUNSUPPORTED, "--backend", k->name,
			    "use --backend cpu, or a checkpoint with experts in its shards and no --host-cache",
			    "routed experts from the host cache or an expert store are host memory; the %s backend "
			    "needs GPU expert slots, which this build does not have yet", k->name);
}
