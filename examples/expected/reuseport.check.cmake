# The check of examples/reuseport.c (by cmake/run_example_check.cmake, with
# OUTPUT_LINES set).  Which loop the kernel gives a connection varies; that
# every connection is answered, by one of the two loops, does not.  Both
# loops getting at least one of 40 connections fails by chance with
# probability 2^-39: it is required, as the point of SO_REUSEPORT.

set(_sum "")
foreach(_line IN LISTS OUTPUT_LINES)
    if(_line MATCHES "^40 connections: loop 0 served ([0-9]+), loop 1 served ([0-9]+)$")
        math(EXPR _sum "${CMAKE_MATCH_1} + ${CMAKE_MATCH_2}")
        if(CMAKE_MATCH_1 EQUAL 0 OR CMAKE_MATCH_2 EQUAL 0)
            check_fail("one loop served every connection: ${_line}")
        endif()
    endif()
endforeach()
if(_sum STREQUAL "")
    check_fail("no '40 connections: loop 0 served N, loop 1 served M' line")
endif()
if(NOT _sum EQUAL 40)
    check_fail("${_sum} connections answered, not 40")
endif()
if(NOT OUTPUT MATCHES "2 loops in 2 threads listen on one port \\(SO_REUSEPORT\\)\n")
    check_fail("no header line")
endif()
if(NOT OUTPUT MATCHES "\n40 of 40 answered; the kernel spread them over 2 of the 2 loops\n")
    check_fail("no summary line")
endif()
