# GPU expert slots (cache/gpu).
#   test_gpuslots_cache   slot logic (LRU, references, events, inner views) on a fake device (unit)
nv_add_c_test(test_gpuslots_cache unit ${CMAKE_SOURCE_DIR}/tests/test_gpuslots_cache.c)
#   gpuslots_tiny_ci / _tiny_a   eval --backend cuda: resident vs 3 GPU slots (mapped, host cache,
#                                store, 2 slots) bitwise (gpu; skip 77 without a device / ../shared)
if(NVMOE_HAVE_CUDA)
  # test_gpuslots_cuda: the real CUDA copy/event operations, pinned host pool, budget sizing
  nv_add_c_test(test_gpuslots_cuda gpu ${CMAKE_SOURCE_DIR}/tests/test_gpuslots_cuda.c)
  foreach(m tiny-ci tiny-a)
    string(REPLACE "-" "_" mu ${m})
    nv_add_test(NAME gpuslots_${mu} LABEL gpu
      COMMAND bash ${CMAKE_SOURCE_DIR}/tests/gpuslots.sh $<TARGET_FILE:nvmoe> $<TARGET_FILE:test_cuda_ops> ${m})
  endforeach()
endif()
#   test_gpuslots_model   the slot layer end to end on the CPU backend (host "device" ops): resident
#                         logits == 3 slots over mapped / HF+host cache / store+host cache (unit)
nv_add_c_test(test_gpuslots_model unit ${CMAKE_SOURCE_DIR}/tests/test_gpuslots_model.c)
add_dependencies(test_gpuslots_model mkmodel)
