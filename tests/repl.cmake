# nvmoe run / nvmoe chat / the demo (issue 4 items 4-5).
# The display of reasoning vs answer, with cli/gen.c compiled in.
nv_add_c_test(test_repl_show unit ${CMAKE_SOURCE_DIR}/tests/test_repl_show.c)
target_link_libraries(test_repl_show PRIVATE nv_cli)
target_include_directories(test_repl_show PRIVATE ${CMAKE_SOURCE_DIR})
# nvmoe run end to end on a TINY-CI model with the in-repo chat tokenizer.
nv_add_test(NAME repl_run LABEL model TIMEOUT 300
  COMMAND bash ${CMAKE_SOURCE_DIR}/tests/repl_run.sh $<TARGET_FILE:nvmoe> $<TARGET_FILE:mkmodel>)
# nvmoe chat driven through a pseudo-terminal.
nv_add_test(NAME repl_chat LABEL model TIMEOUT 300
  COMMAND python3 ${CMAKE_SOURCE_DIR}/tests/repl_chat.py $<TARGET_FILE:nvmoe> $<TARGET_FILE:mkmodel>)
