# CUDA backend (label gpu), only in a CUDA build.  Every test exits 77 (skipped)
# without a CUDA device; the golden ones also without ../shared.
#   test_cuda_ops        every kernel-table op, CUDA against the CPU backend
#   test_cuda_forward    whole forward pass: chunk invariance (bitwise), smooth vs CPU
#   cuda_golden_*        `nvmoe golden --backend cuda` on the tiny golden cases
if(NVMOE_HAVE_CUDA)
  nv_add_c_test(test_cuda_ops gpu ${CMAKE_SOURCE_DIR}/tests/test_cuda_ops.c)
  nv_add_c_test(test_cuda_forward gpu ${CMAKE_SOURCE_DIR}/tests/test_cuda_forward.c)
  foreach(c tiny-a tiny-b)
    foreach(m smooth exact faithful)
      nv_add_test(NAME cuda_golden_${c}_${m} LABEL gpu
        COMMAND bash ${CMAKE_SOURCE_DIR}/tests/cuda_golden.sh $<TARGET_FILE:nvmoe>
                $<TARGET_FILE:test_cuda_ops> ${c} ${m})
    endforeach()
  endforeach()
endif()
