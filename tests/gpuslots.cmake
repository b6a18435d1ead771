# GPU expert slots (cache/gpu).
#   test_gpuslots_cache   slot logic (LRU, references, events, inner views) on a fake device (unit)
nv_add_c_test(test_gpuslots_cache unit ${CMAKE_SOURCE_DIR}/tests/test_gpuslots_cache.c)
