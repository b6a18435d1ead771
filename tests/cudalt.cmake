# cuBLASLt block-scaled FP8 GEMM path of the CUDA backend (NVMOE_CUDA_GEMM=lt).
#   test_lt_scale   host-side rules (kernels/cuda/lt.h): E8M0 -> f32 scale grid in
#                   cuBLASLt's layout, which calls the path takes; CPU only, every build
#   test_cuda_lt    the path against the CPU gemm_fp8 (bound of MODEL.md §7.5/§10.8) and
#                   its fallback to the own kernel (bitwise); exit 77 without a device
nv_add_c_test(test_lt_scale unit ${CMAKE_SOURCE_DIR}/tests/test_lt_scale.c)
if(NVMOE_HAVE_CUDA)
  nv_add_c_test(test_cuda_lt gpu ${CMAKE_SOURCE_DIR}/tests/test_cuda_lt.c)
endif()
