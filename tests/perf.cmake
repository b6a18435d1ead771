# CPU backend performance work: optimised kernels vs the plain-C table, row/thread
# invariance, the pool (label unit); `nvmoe bench` smoke test on a golden checkpoint.
nv_add_c_test(test_perf_kernels unit ${CMAKE_SOURCE_DIR}/tests/test_perf_kernels.c)
nv_add_test(NAME perf_bench_cli LABEL unit
  COMMAND bash ${CMAKE_SOURCE_DIR}/tests/perf_bench.sh $<TARGET_FILE:nvmoe>)
