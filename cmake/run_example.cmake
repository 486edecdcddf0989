# Runs one example and compares its stdout byte for byte with a file.
#
#   cmake -DEXE=path/to/example -DEXPECTED=examples/expected/NAME.txt
#         [-DARGS_FILE=examples/expected/NAME.args] [-DACTUAL=where/to/keep/stdout]
#         -P run_example.cmake
#
# ARGS_FILE, if it exists, holds one line of arguments separated by blanks
# (no quoting).  The example runs with WEFT_CLOCK=virtual.  The test fails on
# a non-zero exit status, a timeout or any difference in stdout.
#
# If the environment variable WEFT_EXAMPLE_WRAPPER is set (for example to
# "valgrind -q --error-exitcode=99"), the example runs under that command.

cmake_minimum_required(VERSION 3.20)

foreach(_var EXE EXPECTED)
    if(NOT DEFINED ${_var})
        message(FATAL_ERROR "run_example.cmake: -D${_var}=... is required")
    endif()
endforeach()
if(NOT EXISTS "${EXPECTED}")
    message(FATAL_ERROR "expected-output file ${EXPECTED} does not exist")
endif()
if(NOT DEFINED ACTUAL)
    get_filename_component(_name "${EXE}" NAME)
    set(ACTUAL "${CMAKE_CURRENT_BINARY_DIR}/${_name}.actual.txt")
endif()

set(_args "")
if(DEFINED ARGS_FILE AND EXISTS "${ARGS_FILE}")
    file(STRINGS "${ARGS_FILE}" _line LIMIT_COUNT 1)
    string(REGEX MATCHALL "[^ \t]+" _args "${_line}")
endif()
set(_wrapper "")
if(NOT "$ENV{WEFT_EXAMPLE_WRAPPER}" STREQUAL "")
    separate_arguments(_wrapper UNIX_COMMAND "$ENV{WEFT_EXAMPLE_WRAPPER}")
endif()

set(ENV{WEFT_CLOCK} virtual)
execute_process(COMMAND ${_wrapper} "${EXE}" ${_args}
                OUTPUT_FILE "${ACTUAL}"
                ERROR_VARIABLE _stderr
                RESULT_VARIABLE _rc
                TIMEOUT 100)

file(READ "${EXPECTED}" _want)
file(READ "${ACTUAL}" _got)
string(JOIN " " _cmdline ${_wrapper} "${EXE}" ${_args})

if(_rc STREQUAL "0" AND _want STREQUAL _got)
    message(STATUS "example output matches ${EXPECTED}")
    return()
endif()

# Failure: say why, then show where the outputs part.
set(_report "")
if(NOT _rc STREQUAL "0")
    string(APPEND _report "example exited with status '${_rc}' (expected 0)\n")
endif()
if(NOT _want STREQUAL _got)
    # Line-by-line comparison; ';' must not split lines into list elements.
    string(REPLACE ";" "\\;" _w "${_want}")
    string(REPLACE ";" "\\;" _g "${_got}")
    string(REPLACE "\n" ";" _w "${_w}")
    string(REPLACE "\n" ";" _g "${_g}")
    list(LENGTH _w _nw)
    list(LENGTH _g _ng)
    set(_i 0)
    set(_first -1)
    while(_i LESS _nw AND _i LESS _ng)
        list(GET _w ${_i} _lw)
        list(GET _g ${_i} _lg)
        if(NOT _lw STREQUAL _lg)
            set(_first ${_i})
            break()
        endif()
        math(EXPR _i "${_i} + 1")
    endwhile()
    if(_first EQUAL -1)
        set(_first ${_i})
    endif()
    math(EXPR _lineno "${_first} + 1")
    string(APPEND _report "stdout differs from ${EXPECTED}, first at line ${_lineno}:\n")
    if(_first LESS _nw)
        list(GET _w ${_first} _lw)
        string(APPEND _report "  expected: [${_lw}]\n")
    else()
        string(APPEND _report "  expected: <end of output>\n")
    endif()
    if(_first LESS _ng)
        list(GET _g ${_first} _lg)
        string(APPEND _report "  actual:   [${_lg}]\n")
    else()
        string(APPEND _report "  actual:   <end of output>\n")
    endif()
    string(APPEND _report "(a difference in the final newline also counts)\n")

    find_program(_diff diff)
    if(_diff)
        execute_process(COMMAND "${_diff}" -u --label expected --label actual "${EXPECTED}"
                                "${ACTUAL}"
                        OUTPUT_VARIABLE _udiff)
        string(APPEND _report "---- diff -u expected actual ----\n${_udiff}")
    else()
        string(APPEND _report "---- expected ----\n${_want}\n---- actual ----\n${_got}\n")
    endif()
endif()
if(NOT _stderr STREQUAL "")
    string(APPEND _report "---- stderr ----\n${_stderr}\n")
endif()
string(APPEND _report "command: WEFT_CLOCK=virtual ${_cmdline}\n"
                      "actual stdout kept in ${ACTUAL}\n")
# Plain message() prints the report verbatim; FATAL_ERROR would re-wrap it.
message("${_report}")
get_filename_component(_name "${EXE}" NAME)
message(FATAL_ERROR "example ${_name}: output or exit status does not match")
