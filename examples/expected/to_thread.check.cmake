# The check of examples/to_thread.c (run by cmake/run_example_check.cmake,
# with OUTPUT_LINES set): its timings vary, its order and bounds do not.
#   - the loop ticks before the first blocking call is done (it was not
#     blocked while the calls ran);
#   - all three calls are done, each with its own result (n * 10);
#   - the program's own measurement of the whole: at least 1 s (each call
#     sleeps 1 s) and under 2 s (one after another they would take 3 s).

set(_ticks_before 0)
set(_done "")
set(_total "")
foreach(_line IN LISTS OUTPUT_LINES)
    if(_line MATCHES "^tick [0-9]+ at [0-9]+\\.[0-9][0-9] s$")
        list(LENGTH _done _n)
        if(_n EQUAL 0)
            math(EXPR _ticks_before "${_ticks_before} + 1")
        endif()
    elseif(_line MATCHES "^call ([123]) done at [0-9]+\\.[0-9][0-9] s: ([0-9]+)$")
        math(EXPR _want "${CMAKE_MATCH_1} * 10")
        if(NOT CMAKE_MATCH_2 EQUAL _want)
            check_fail("call ${CMAKE_MATCH_1} returned ${CMAKE_MATCH_2}, not ${_want}")
        endif()
        list(APPEND _done ${CMAKE_MATCH_1})
    elseif(_line MATCHES "^all 3 calls done in ([0-9]+)\\.([0-9][0-9]) s ")
        math(EXPR _total "${CMAKE_MATCH_1} * 1000 + ${CMAKE_MATCH_2} * 10")
    endif()
endforeach()

if(_ticks_before LESS 1)
    check_fail("no tick before the first call was done: the loop was blocked")
endif()
list(SORT _done)
if(NOT _done STREQUAL "1;2;3")
    check_fail("calls done: '${_done}', expected each of 1, 2, 3 once")
endif()
if(_total STREQUAL "")
    check_fail("no 'all 3 calls done in ...' line")
endif()
if(_total LESS 1000 OR _total GREATER_EQUAL 2000)
    check_fail("the three calls took ${_total} ms: expected at least 1000 and under 2000 "
               "(they must overlap)")
endif()
