# The memory plan as the default (cli/plan.h, cli_experts_open_auto).
#   test_autoplan_plan  the plan's split on the released config (sparse checkpoint)
#                       against CHECKPOINT.md / MODEL.md figures; edge cases; RAM probe
#   autoplan_cli        eval/bench/run on TINY-CI: --ram forcing streaming gives the
#                       resident logits bitwise; explicit flags win; bad --ram exits 2
nv_add_c_test(test_autoplan_plan unit ${CMAKE_SOURCE_DIR}/tests/test_autoplan_plan.c)
target_link_libraries(test_autoplan_plan PRIVATE nv_cli)
target_include_directories(test_autoplan_plan PRIVATE ${CMAKE_SOURCE_DIR})
nv_add_test(NAME autoplan_cli LABEL model TIMEOUT 300 COMMAND bash ${CMAKE_SOURCE_DIR}/tests/autoplan_cli.sh)
