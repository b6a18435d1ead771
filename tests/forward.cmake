# Forward pass: kernels, model, golden checks (label model; unit for kernel tests).
add_executable(test_forward_perturb ${CMAKE_SOURCE_DIR}/tests/test_forward_perturb.c)
foreach(c tiny-a tiny-b)
  foreach(m smooth exact faithful)
    nv_add_test(NAME forward_golden_${c}_${m} LABEL model
      COMMAND bash ${CMAKE_SOURCE_DIR}/tests/forward_golden.sh $<TARGET_FILE:nvmoe> ${c} ${m})
  endforeach()
endforeach()
nv_add_test(NAME forward_golden_compact_perturb LABEL model
  COMMAND bash ${CMAKE_SOURCE_DIR}/tests/forward_compact.sh $<TARGET_FILE:nvmoe> $<TARGET_FILE:test_forward_perturb>)
nv_add_c_test(test_forward_model model ${CMAKE_SOURCE_DIR}/tests/test_forward_model.c)
nv_add_c_test(test_forward_kernels unit ${CMAKE_SOURCE_DIR}/tests/test_forward_kernels.c)
