# The check of examples/http_get.c run alone (no URL: it serves a 200 ms
# server in its own loop), by cmake/run_example_check.cmake with
# OUTPUT_LINES set.  Times vary; their ratio does not: the ten requests at
# once must take under a third of the ten in a row (about a tenth).

set(_ok 0)
set(_seq "")
set(_conc "")
foreach(_line IN LISTS OUTPUT_LINES)
    if(_line MATCHES "^http://127\\.0\\.0\\.1:[0-9]+/ => 200$")
        math(EXPR _ok "${_ok} + 1")
    elseif(_line MATCHES "=> ")
        check_fail("a request failed: ${_line}")
    elseif(_line MATCHES "^sequential: 10 requests in ([0-9]+)\\.([0-9][0-9]) s$")
        math(EXPR _seq "${CMAKE_MATCH_1} * 1000 + ${CMAKE_MATCH_2} * 10")
    elseif(_line MATCHES "^concurrent: 10 requests in ([0-9]+)\\.([0-9][0-9]) s ")
        math(EXPR _conc "${CMAKE_MATCH_1} * 1000 + ${CMAKE_MATCH_2} * 10")
    endif()
endforeach()
if(NOT _ok EQUAL 20)
    check_fail("${_ok} answers with status 200, expected 20")
endif()
if(_seq STREQUAL "" OR _conc STREQUAL "")
    check_fail("no 'sequential:' or 'concurrent:' line")
endif()
math(EXPR _conc3 "${_conc} * 3")
if(NOT _conc3 LESS _seq)
    check_fail("concurrent ${_conc} ms is not under a third of sequential ${_seq} ms")
endif()
