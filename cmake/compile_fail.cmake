# Checks that a source file does NOT compile, and that it does once the line
# marked OFFENDING is deleted (so the failure comes from that line, not from
# some unrelated mistake).
#
#   cmake -DCC=compiler -DSOURCE=tests/compile_fail/x.c -DINCLUDE_DIR=include
#         -DSCRATCH_DIR=dir [-DLABELS=ON] [-DWERROR=ON]
#         -P compile_fail.cmake
#
# LABELS=ON compiles for the labels-as-values coroutine backend.  Only
# checks syntax and semantics (-fsyntax-only: GCC and Clang).

cmake_minimum_required(VERSION 3.20)

foreach(_var CC SOURCE INCLUDE_DIR SCRATCH_DIR)
    if(NOT DEFINED ${_var} OR "${${_var}}" STREQUAL "")
        message(FATAL_ERROR "compile_fail.cmake: -D${_var}=... is required")
    endif()
endforeach()

set(_common -std=c11 -D_POSIX_C_SOURCE=200809L -Wall -Wextra -Wpedantic -fsyntax-only
            "-I${INCLUDE_DIR}")
if(LABELS)
    list(APPEND _common -DWEFT_CO_LABELS=1)
endif()
get_filename_component(_name "${SOURCE}" NAME)

# A file may ask for extra compiler flags with a line
#   COMPILE_FAIL_GCC_FLAGS: <flags>
# (such a test is registered for GCC and the switch backend only).
file(STRINGS "${SOURCE}" _flag_lines REGEX "COMPILE_FAIL_GCC_FLAGS:")
foreach(_line IN LISTS _flag_lines)
    string(REGEX REPLACE ".*COMPILE_FAIL_GCC_FLAGS:[ \t]*" "" _flags "${_line}")
    separate_arguments(_flags UNIX_COMMAND "${_flags}")
    list(APPEND _common ${_flags})
endforeach()

# The control: the same file without its OFFENDING line(s) must compile
# (warning-free when WERROR is set).
file(READ "${SOURCE}" _text)
# A code line mentioning OFFENDING (comment lines, which start with / or *,
# do not count); replaced by an empty line so line numbers stay the same.
set(_re "\n[ \t]*[^ \t\n/*][^\n]*OFFENDING[^\n]*")
if(NOT _text MATCHES "${_re}")
    message(FATAL_ERROR "${SOURCE}: no code line is marked OFFENDING")
endif()
string(REGEX REPLACE "${_re}" "\n" _text "${_text}")
file(MAKE_DIRECTORY "${SCRATCH_DIR}")
# Same file name, so the compiler's messages read the same.
set(_control "${SCRATCH_DIR}/${_name}")
file(WRITE "${_control}" "${_text}")
set(_werror "")
if(WERROR)
    set(_werror -Werror)
endif()
execute_process(COMMAND "${CC}" ${_common} ${_werror} "${_control}"
                RESULT_VARIABLE _rc OUTPUT_VARIABLE _out ERROR_VARIABLE _out)
string(JOIN " " _cmd "${CC}" ${_common} ${_werror} "${_control}")
if(NOT _rc STREQUAL "0")
    message("${_out}")
    message(FATAL_ERROR "control compile failed: without its OFFENDING line ${_name} must "
                        "compile, so the failure below would not prove anything.\n  ${_cmd}")
endif()

# The real thing must fail.
execute_process(COMMAND "${CC}" ${_common} "${SOURCE}"
                RESULT_VARIABLE _rc OUTPUT_VARIABLE _out ERROR_VARIABLE _out)
string(JOIN " " _cmd "${CC}" ${_common} "${SOURCE}")
if(_rc STREQUAL "0")
    message("${_out}")
    message(FATAL_ERROR "${_name} compiled, but it must not:\n  ${_cmd}")
endif()
message("${_out}")
message(STATUS "${_name} fails to compile, as it must; without its OFFENDING line it compiles")
