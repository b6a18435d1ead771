# Layer-major prefill (DESIGN.md §4): identical logits in both orders, expert reads.
add_executable(test_layered ${CMAKE_SOURCE_DIR}/tests/test_layered.c ${CMAKE_SOURCE_DIR}/tests/testutil.c)
target_link_libraries(test_layered PRIVATE nv_offload)
add_dependencies(test_layered mkmodel)
nv_add_test(NAME layered_identity_mk LABEL model COMMAND test_layered mk)
nv_add_test(NAME layered_identity_golden LABEL model COMMAND test_layered golden)
nv_add_test(NAME layered_reads LABEL model COMMAND test_layered reads)
nv_add_test(NAME layered_cli LABEL model
  COMMAND bash ${CMAKE_SOURCE_DIR}/tests/layered_cli.sh $<TARGET_FILE:nvmoe> $<TARGET_FILE:mkmodel>
          $<TARGET_FILE:test_forward_perturb>)
