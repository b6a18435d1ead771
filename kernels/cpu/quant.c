/* kernels/cpu/quant.c - the in-place quantisation simulations and the Hadamard
 * rotation (§10.1, §10.2, §10.6). */
#include "cpu.h"

void cpu_qdq8(struct kern *k, float *x, int rows, int ld, int len, int block, unsigned nm)
{
	if (!(nm & KERN_QNT)) return;
	for (int r = 0; r < rows; r++) kern_qdq8(x + (size_t)r * ld, len, block);
}

void cpu_qdq4(struct kern *k, float *x, int rows, int ld, int len, unsigned nm)
{
	if (!(nm & KERN_QNT)) return;
	for (int r = 0; r < rows; r++) kern_qdq4(x + (size_t)r * ld, len, 32);
}

void cpu_hadamard(struct kern *k, float *x, int rows, int n, unsigned nm)
{
	for (int r = 0; r < rows; r++) kern_hadamard(x + (size_t)r * n, n, (nm & KERN_RND) != 0);
}
