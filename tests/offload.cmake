# Offload tiers: io engine, host cache, expert store, expert source, convert, bench --io.
nv_add_c_test(test_offload_engine unit ${CMAKE_SOURCE_DIR}/tests/test_offload_engine.c)
nv_add_c_test(test_offload_cache unit ${CMAKE_SOURCE_DIR}/tests/test_offload_cache.c)
nv_add_c_test(test_offload_store unit ${CMAKE_SOURCE_DIR}/tests/test_offload_store.c)
