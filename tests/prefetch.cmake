# Prefetch and overlap (issue 6): eviction policies, routing traces, tracesim.
nv_add_c_test(test_prefetch_policy unit ${CMAKE_SOURCE_DIR}/tests/test_prefetch_policy.c)
target_link_libraries(test_prefetch_policy PRIVATE tracesim_sim)
nv_add_c_test(test_prefetch_trace unit ${CMAKE_SOURCE_DIR}/tests/test_prefetch_trace.c)
nv_add_test(NAME test_prefetch_tracesim_sh LABEL unit COMMAND bash ${CMAKE_SOURCE_DIR}/tests/prefetch_tracesim.sh)
nv_add_c_test(test_prefetch_source model ${CMAKE_SOURCE_DIR}/tests/test_prefetch_source.c)
add_dependencies(test_prefetch_source mkmodel tracesim)
nv_add_test(NAME prefetch_eval LABEL model COMMAND bash ${CMAKE_SOURCE_DIR}/tests/prefetch_eval.sh)
nv_add_c_test(test_prefetch_engine unit ${CMAKE_SOURCE_DIR}/tests/test_prefetch_engine.c)
