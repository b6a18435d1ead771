/* cli/backend.c - `--backend cpu|cuda|auto`: the one place that creates a kernel
 * backend for the commands (auto = CUDA when a device is present, else CPU). */
#include <errno.h>
#include <string.h>

#include "cli.h"
#include "cache/gpu.h"
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
	struct kern_cpu_opts co = { .threads = o->threads, .isa = KERN_CPU_ISA_AUTO };
	*out = kern_cpu_create_opts(&co);
	if (!*out)
		return core_err_set(e, NV_ENOMEM, "--backend", "cpu", "try fewer --threads",
				    "cannot create the CPU backend with %d threads (memory or thread creation)",
				    o->threads);
	return 0;
}

int cli_backend_check_experts(const struct kern *k, const struct core_expert_src *src, struct nv_err *e)
{
	if (!src || !strcmp(k->name, "cpu") || cache_gpu_is_src(src)) return 0;
	return core_err_set(e, NV_EUNSUPPORTED, "--backend", k->name,
			    "internal: open the experts with cli_experts_open_k for this backend",
			    "routed experts from the host cache or an expert store are host memory; the %s backend "
			    "reads them through GPU expert slots", k->name);
}
