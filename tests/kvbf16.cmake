# KV cache element type: bf16 caches in the faithful mode, f32 otherwise (MODEL.md §13.1).
add_executable(test_kvbf16 ${CMAKE_SOURCE_DIR}/tests/test_kvbf16.c ${CMAKE_SOURCE_DIR}/tests/testutil.c)
target_link_libraries(test_kvbf16 PRIVATE nv_offload)
add_dependencies(test_kvbf16 mkmodel)
nv_add_test(NAME kvbf16_state_release LABEL model COMMAND test_kvbf16 release)
nv_add_test(NAME kvbf16_state_tiny LABEL model COMMAND test_kvbf16 tiny)
nv_add_test(NAME kvbf16_kernels LABEL unit COMMAND test_kvbf16 kernels)
