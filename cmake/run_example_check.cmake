# Runs one example whose output cannot be compared byte for byte (it runs
# on the real clock) and hands its output to a check script of its own.
#
#   cmake -DEXE=path/to/example -DCHECK=examples/expected/NAME.check.cmake
#         [-DACTUAL=where/to/keep/stdout] -P run_example_check.cmake
#
# The example runs with WEFT_CLOCK=virtual (as every example test: one on the
# real clock must ignore it) and, if WEFT_EXAMPLE_WRAPPER is set, under that
# command, as run_example.cmake does.  It must exit 0.  CHECK is then
# include()d with OUTPUT (stdout) and OUTPUT_LINES (its lines, a list) set;
# it fails the test with check_fail("why").

cmake_minimum_required(VERSION 3.20)

foreach(_var EXE CHECK)
    if(NOT DEFINED ${_var})
        message(FATAL_ERROR "run_example_check.cmake: -D${_var}=... is required")
    endif()
endforeach()
if(NOT EXISTS "${CHECK}")
    message(FATAL_ERROR "check script ${CHECK} does not exist")
endif()
if(NOT DEFINED ACTUAL)
    get_filename_component(_name "${EXE}" NAME)
    set(ACTUAL "${CMAKE_CURRENT_BINARY_DIR}/${_name}.actual.txt")
endif()
set(_wrapper "")
if(NOT "$ENV{WEFT_EXAMPLE_WRAPPER}" STREQUAL "")
    separate_arguments(_wrapper UNIX_COMMAND "$ENV{WEFT_EXAMPLE_WRAPPER}")
endif()

set(ENV{WEFT_CLOCK} virtual)
execute_process(COMMAND ${_wrapper} "${EXE}"
                OUTPUT_FILE "${ACTUAL}"
                ERROR_VARIABLE _stderr
                RESULT_VARIABLE _rc
                TIMEOUT 100)
file(READ "${ACTUAL}" OUTPUT)
string(JOIN " " _cmdline ${_wrapper} "${EXE}")

# Fail with the reason, the output and how to reproduce.
function(check_fail why)
    message("${why}\n---- stdout ----\n${OUTPUT}---- stderr ----\n${_stderr}\n"
            "command: WEFT_CLOCK=virtual ${_cmdline}\nstdout kept in ${ACTUAL}")
    get_filename_component(_n "${EXE}" NAME)
    message(FATAL_ERROR "example ${_n}: ${why}")
endfunction()

if(NOT _rc STREQUAL "0")
    check_fail("example exited with status '${_rc}' (expected 0)")
endif()
string(REPLACE ";" "\\;" _lines "${OUTPUT}")
string(REGEX REPLACE "\n$" "" _lines "${_lines}")
string(REPLACE "\n" ";" OUTPUT_LINES "${_lines}")
include("${CHECK}")
message(STATUS "example output passes ${CHECK}")
