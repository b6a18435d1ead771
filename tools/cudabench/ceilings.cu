/* tools/cudabench/ceilings.cu - what the device can do, measured in the same run:
 * device-to-device copy bandwidth, cuBLAS BF16 GEMM and cuBLASLt FP8 (E4M3) GEMM
 * throughput.  Each returns a negative value (and a message) when unavailable. */
#include <cublasLt.h>
#include <cublas_v2.h>
#include <cuda_bf16.h>
#include <cuda_runtime.h>
#include <stdio.h>

#define TRY(x, what) do { if ((x) != 0) { snprintf(msg, msg_n, "%s failed", what); goto out; } } while (0)

static float time_events(cudaEvent_t a, cudaEvent_t b)
{
	float ms = 0;
	cudaEventSynchronize(b);
	cudaEventElapsedTime(&ms, a, b);
	return ms;
}

/* GB/s of read + write of a 1 GiB device-to-device copy. */
extern "C" double cb_copy_gbs(char *msg, size_t msg_n)
{
	const size_t n = (size_t)1 << 30;
	void *a = NULL, *b = NULL;
	double r = -1;
	cudaEvent_t e0, e1;
	cudaEventCreate(&e0);
	cudaEventCreate(&e1);
	TRY(cudaMalloc(&a, n), "cudaMalloc");
	TRY(cudaMalloc(&b, n), "cudaMalloc");
	cudaMemset(a, 1, n);
	cudaMemcpy(b, a, n, cudaMemcpyDeviceToDevice);
	cudaEventRecord(e0);
	for (int i = 0; i < 10; i++) cudaMemcpyAsync(b, a, n, cudaMemcpyDeviceToDevice);
	cudaEventRecord(e1);
	r = 2.0 * n * 10 / (time_events(e0, e1) * 1e-3) / 1e9;
out:
	cudaFree(a);
	cudaFree(b);
	cudaEventDestroy(e0);
	cudaEventDestroy(e1);
	cudaGetLastError();
	return r;
}

/* TFLOP/s of a BF16 x BF16 -> f32 GEMM (m = n = k = 8192), f32 accumulation. */
extern "C" double cb_bf16_tflops(char *msg, size_t msg_n)
{
	const int m = 8192, n = 8192, k = 8192;
	void *A = NULL, *B = NULL, *Cm = NULL;
	cublasHandle_t h = NULL;
	double r = -1;
	float al = 1, be = 0;
	cudaEvent_t e0, e1;
	cudaEventCreate(&e0);
	cudaEventCreate(&e1);
	TRY(cudaMalloc(&A, (size_t)m * k * 2), "cudaMalloc");
	TRY(cudaMalloc(&B, (size_t)n * k * 2), "cudaMalloc");
	TRY(cudaMalloc(&Cm, (size_t)m * n * 4), "cudaMalloc");
	cudaMemset(A, 0, (size_t)m * k * 2);
	cudaMemset(B, 0, (size_t)n * k * 2);
	TRY(cublasCreate(&h), "cublasCreate");
	for (int it = 0; it < 2; it++) {
		cudaEventRecord(e0);
		for (int i = 0; i < 10; i++)
			TRY(cublasGemmEx(h, CUBLAS_OP_T, CUBLAS_OP_N, m, n, k, &al, A, CUDA_R_16BF, k, B, CUDA_R_16BF, k, &be, Cm,
					 CUDA_R_32F, m, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT),
			    "cublasGemmEx");
		cudaEventRecord(e1);
		r = 2.0 * m * n * k * 10 / (time_events(e0, e1) * 1e-3) / 1e12;
	}
out:
	if (h) cublasDestroy(h);
	cudaFree(A);
	cudaFree(B);
	cudaFree(Cm);
	cudaEventDestroy(e0);
	cudaEventDestroy(e1);
	cudaGetLastError();
	return r;
}

/* TFLOP/s of an E4M3 x E4M3 -> bf16 GEMM through cuBLASLt (TN layout, m = n = k = 8192). */
extern "C" double cb_fp8_tflops(char *msg, size_t msg_n)
{
	const int m = 8192, n = 8192, k = 8192;
	void *A = NULL, *B = NULL, *D = NULL, *ws = NULL;
	const size_t wsb = 32u << 20;
	cublasLtHandle_t h = NULL;
	cublasLtMatmulDesc_t op = NULL;
	cublasLtMatrixLayout_t la = NULL, lb = NULL, ld = NULL;
	cublasLtMatmulPreference_t pref = NULL;
	cublasLtMatmulHeuristicResult_t heur;
	int nres = 0;
	double r = -1;
	float al = 1, be = 0;
	cublasOperation_t tA = CUBLAS_OP_T, tB = CUBLAS_OP_N;
	cudaEvent_t e0, e1;
	cudaEventCreate(&e0);
	cudaEventCreate(&e1);
	TRY(cudaMalloc(&A, (size_t)m * k), "cudaMalloc");
	TRY(cudaMalloc(&B, (size_t)n * k), "cudaMalloc");
	TRY(cudaMalloc(&D, (size_t)m * n * 2), "cudaMalloc");
	TRY(cudaMalloc(&ws, wsb), "cudaMalloc");
	cudaMemset(A, 0, (size_t)m * k);
	cudaMemset(B, 0, (size_t)n * k);
	TRY(cublasLtCreate(&h), "cublasLtCreate");
	TRY(cublasLtMatmulDescCreate(&op, CUBLAS_COMPUTE_32F, CUDA_R_32F), "cublasLtMatmulDescCreate");
	TRY(cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_TRANSA, &tA, sizeof tA), "set TRANSA");
	TRY(cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_TRANSB, &tB, sizeof tB), "set TRANSB");
	TRY(cublasLtMatrixLayoutCreate(&la, CUDA_R_8F_E4M3, k, m, k), "layout A");
	TRY(cublasLtMatrixLayoutCreate(&lb, CUDA_R_8F_E4M3, k, n, k), "layout B");
	TRY(cublasLtMatrixLayoutCreate(&ld, CUDA_R_16BF, m, n, m), "layout D");
	TRY(cublasLtMatmulPreferenceCreate(&pref), "preference");
	TRY(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &wsb, sizeof wsb),
	    "preference workspace");
	TRY(cublasLtMatmulAlgoGetHeuristic(h, op, la, lb, ld, ld, pref, 1, &heur, &nres), "heuristic");
	if (nres < 1) {
		snprintf(msg, msg_n, "no FP8 algorithm on this device");
		goto out;
	}
	for (int it = 0; it < 2; it++) {
		cudaEventRecord(e0);
		for (int i = 0; i < 10; i++)
			TRY(cublasLtMatmul(h, op, &al, A, la, B, lb, &be, D, ld, D, ld, &heur.algo, ws, wsb, 0), "cublasLtMatmul");
		cudaEventRecord(e1);
		r = 2.0 * m * n * k * 10 / (time_events(e0, e1) * 1e-3) / 1e12;
	}
out:
	if (pref) cublasLtMatmulPreferenceDestroy(pref);
	if (la) cublasLtMatrixLayoutDestroy(la);
	if (lb) cublasLtMatrixLayoutDestroy(lb);
	if (ld) cublasLtMatrixLayoutDestroy(ld);
	if (op) cublasLtMatmulDescDestroy(op);
	if (h) cublasLtDestroy(h);
	cudaFree(A);
	cudaFree(B);
	cudaFree(D);
	cudaFree(ws);
	cudaEventDestroy(e0);
	cudaEventDestroy(e1);
	cudaGetLastError();
	return r;
}
