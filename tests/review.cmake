# The command line's contract: usage errors, --help, the command table, bad input.
nv_add_test(NAME cli_usage LABEL unit TIMEOUT 400
  COMMAND bash ${CMAKE_SOURCE_DIR}/tests/cli_usage.sh $<TARGET_FILE:nvmoe> $<TARGET_FILE:mkmodel>)
