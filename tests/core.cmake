# core/: number formats and other pure functions.
nv_add_c_test(test_numfmt unit ${CMAKE_SOURCE_DIR}/tests/test_numfmt.c)
# Offload tiers never change the logits (eval on HF dir, tiny cache, store).
nv_add_test(NAME eval_tiers LABEL model COMMAND bash ${CMAKE_SOURCE_DIR}/tests/eval_tiers.sh)
nv_add_test(NAME bench_tiers_json LABEL model COMMAND bash ${CMAKE_SOURCE_DIR}/tests/bench_tiers.sh)
# Marks: rewinding a sequence gives bitwise the logits of one that never went further.
nv_add_c_test(test_core_seqmark model ${CMAKE_SOURCE_DIR}/tests/test_core_seqmark.c)
