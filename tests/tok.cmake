# Tokenizer, chat format and sampler (CHAT.md, MODEL.md §12).
nv_add_c_test(test_tok_tiny unit ${CMAKE_SOURCE_DIR}/tests/test_tok_tiny.c)
nv_add_c_test(test_tok_ref unit ${CMAKE_SOURCE_DIR}/tests/test_tok_ref.c)
nv_add_c_test(test_chat_rules unit ${CMAKE_SOURCE_DIR}/tests/test_chat_rules.c)
nv_add_c_test(test_chat_ref unit ${CMAKE_SOURCE_DIR}/tests/test_chat_ref.c)
nv_add_c_test(test_sampler unit ${CMAKE_SOURCE_DIR}/tests/test_sampler.c)
nv_add_test(NAME tok_cli LABEL unit COMMAND bash ${CMAKE_SOURCE_DIR}/tests/tok_cli.sh $<TARGET_FILE:nvmoe>)
nv_add_test(NAME fuzz_tok LABEL unit TIMEOUT 400 COMMAND bash ${CMAKE_SOURCE_DIR}/tools/fuzz-tok.sh ${CMAKE_BINARY_DIR}/fuzz-tok 20)
