# CPU prefill GEMMs (blocked over rows): optimised tables vs plain C at awkward row
# counts, and bitwise row independence (label unit).
nv_add_c_test(test_cpuprefill unit ${CMAKE_SOURCE_DIR}/tests/test_cpuprefill.c)
