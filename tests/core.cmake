# core/: number formats and other pure functions.
nv_add_c_test(test_numfmt unit ${CMAKE_SOURCE_DIR}/tests/test_numfmt.c)
