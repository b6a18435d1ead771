# Sampling behind the kernel table (kern.h sample(), issue 7).
#   test_sample        CPU op vs the host sampler (equal ids draw by draw), vs a
#                      long-double evaluation, chi-square of the draws
#   test_sample_gen    run/chat's token loop (cli/gen.c, backend sampling) vs the
#                      host loop with the pre-change sampler and the host sampler
#   test_sample_cuda   CUDA op vs CPU op (gpu; exit 77 without a device)
nv_add_c_test(test_sample unit ${CMAKE_SOURCE_DIR}/tests/test_sample.c)
nv_add_c_test(test_sample_gen model ${CMAKE_SOURCE_DIR}/tests/test_sample_gen.c)
target_link_libraries(test_sample_gen PRIVATE nv_cli)
target_include_directories(test_sample_gen PRIVATE ${CMAKE_SOURCE_DIR})
if(NVMOE_HAVE_CUDA)
  nv_add_c_test(test_sample_cuda gpu ${CMAKE_SOURCE_DIR}/tests/test_sample_cuda.c)
endif()
