# Foundation: config rules, expected tensor set, checkpoint reader, inspect/plan, parsers' fuzzing.
nv_add_c_test(test_foundation_config unit ${CMAKE_SOURCE_DIR}/tests/test_foundation_config.c)
nv_add_c_test(test_foundation_ckpt unit ${CMAKE_SOURCE_DIR}/tests/test_foundation_ckpt.c
  ${CMAKE_SOURCE_DIR}/tests/foundation_ckw.c)
nv_add_c_test(test_foundation_release unit ${CMAKE_SOURCE_DIR}/tests/test_foundation_release.c
  ${CMAKE_SOURCE_DIR}/tests/foundation_ckw.c)
nv_add_test(NAME foundation_cli LABEL unit COMMAND bash ${CMAKE_SOURCE_DIR}/tests/foundation_cli.sh)
# libFuzzer runs of the two parsers, ~25 s each; fails on any crash, leak or UB (77: no clang here).
nv_add_test(NAME fuzz_parsers LABEL unit TIMEOUT 300
  COMMAND env FUZZ_SECONDS=25 bash ${CMAKE_SOURCE_DIR}/tools/fuzz.sh ${CMAKE_BINARY_DIR}/fuzz)
