# Foundation: config rules, expected tensor set, checkpoint reader, inspect/plan, parsers' fuzzing.
nv_add_c_test(test_foundation_config unit ${CMAKE_SOURCE_DIR}/tests/test_foundation_config.c)
nv_add_c_test(test_foundation_ckpt unit ${CMAKE_SOURCE_DIR}/tests/test_foundation_ckpt.c
  ${CMAKE_SOURCE_DIR}/tests/foundation_ckw.c)
