# Offload tiers: io engine, host cache, expert store, expert source, convert, bench --io.
nv_add_c_test(test_offload_engine unit ${CMAKE_SOURCE_DIR}/tests/test_offload_engine.c)
nv_add_c_test(test_offload_cache unit ${CMAKE_SOURCE_DIR}/tests/test_offload_cache.c)
nv_add_c_test(test_offload_store unit ${CMAKE_SOURCE_DIR}/tests/test_offload_store.c)
nv_add_c_test(test_offload_source unit ${CMAKE_SOURCE_DIR}/tests/test_offload_source.c)
add_dependencies(test_offload_source mkmodel)
nv_add_test(NAME test_offload_source_golden LABEL model COMMAND test_offload_source golden)
nv_add_test(NAME test_offload_convert_sh LABEL unit COMMAND bash ${CMAKE_SOURCE_DIR}/tests/offload_convert.sh)
nv_add_test(NAME test_offload_golden_sh LABEL model COMMAND bash ${CMAKE_SOURCE_DIR}/tests/offload_golden.sh)
