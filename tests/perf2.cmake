# Huge-page memory for expert bytes (cache_huge_map, host cache pool).
nv_add_c_test(test_perf_huge unit ${CMAKE_SOURCE_DIR}/tests/test_perf_huge.c)
