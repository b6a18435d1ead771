# CPU decode: the dense GEMMs (gemm_f32 / gemm_bf16: head, gate, compressors) of the
# optimised tables vs plain C at S in {1, 2, 3, 16, 17}, bitwise row independence
# and thread invariance (label unit).
nv_add_c_test(test_cpudecode unit ${CMAKE_SOURCE_DIR}/tests/test_cpudecode.c)
