# tools/mkmodel: synthetic checkpoints (format, determinism, TINY.md §5 values, inventories).
nv_add_c_test(test_mkmodel unit ${CMAKE_SOURCE_DIR}/tests/test_mkmodel.c)
add_dependencies(test_mkmodel mkmodel)
nv_add_test(NAME test_mkmodel_edge LABEL unit COMMAND test_mkmodel edge)
nv_add_test(NAME test_mkmodel_release LABEL unit COMMAND test_mkmodel release)
nv_add_test(NAME test_mkmodel_demo LABEL model COMMAND test_mkmodel demo)
nv_add_c_test(test_mkmodel_codec unit ${CMAKE_SOURCE_DIR}/tests/test_mkmodel_codec.c
  ${CMAKE_SOURCE_DIR}/tools/mkmodel/gen.c)
nv_add_test(NAME test_mkmodel_golden LABEL unit COMMAND test_mkmodel golden)
