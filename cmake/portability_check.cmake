# Proves weft's portability rule: ISO C11 plus POSIX.1-2008, and no compiler
# extension outside the opt-in labels-as-values coroutine backend.
#
#   cmake -DCC=compiler -DSOURCE_DIR=... -DSCRATCH_DIR=...
#         -DHEADERS="a.h|b.h" -DSOURCES="x.c|y.c"
#         [-DINCLUDE_DIRS="dir|dir"] [-DDEFINITIONS="A=1|B"] [-DC_FLAGS="-m32"]
#         -P portability_check.cmake
#
# 1. Every public header compiles on its own (first and only include of a
#    translation unit), both as plain -std=c11 and with
#    -D_POSIX_C_SOURCE=200809L: a user needs no feature macro to include it.
# 2. Every library source compiles with -std=c11 -D_POSIX_C_SOURCE=200809L
#    -pedantic-errors -Werror (so glibc hides everything outside POSIX and a
#    call to a hidden function is an error), on the default coroutine backend
#    and on the labels backend (-DWEFT_CO_LABELS=1, whose two GNU constructs
#    are marked __extension__, the one sanctioned exception).
# 3. -pedantic-errors does not see GNU keywords (__attribute__, __builtin_*,
#    (allowed only in common.h's WEFT_NODISCARD and WEFT_PRINTF, both
#    diagnostics behind a feature check, assert.h's WEFT__COLD, a hint,
#    and _GNU_SOURCE only in symbol.c),
#    typeof, asm, __extension__ ...), nor a feature macro such as _GNU_SOURCE
#    defined inside a file: with a GCC-compatible preprocessor that supports
#    -fdirectives-only, the code of weft's own files that survives the
#    preprocessor conditionals (default backend, macros unexpanded, so
#    libc's own macros do not count) is searched for them.
#
# HEADERS, SOURCES, INCLUDE_DIRS and DEFINITIONS are '|'-separated lists
# (CMakeLists.txt passes the library target's own).  Exits non-zero with the
# compiler's message on the first failure.

cmake_minimum_required(VERSION 3.20)

foreach(_var CC SOURCE_DIR SCRATCH_DIR HEADERS SOURCES)
    if(NOT DEFINED ${_var} OR "${${_var}}" STREQUAL "")
        message(FATAL_ERROR "portability_check.cmake: -D${_var}=... is required")
    endif()
endforeach()

foreach(_list HEADERS SOURCES INCLUDE_DIRS DEFINITIONS)
    string(REPLACE "|" ";" ${_list} "${${_list}}")
endforeach()
separate_arguments(_c_flags UNIX_COMMAND "${C_FLAGS}")

set(_strict -std=c11 -pedantic-errors -Werror -Wall -Wextra ${_c_flags})
set(_incs "")
foreach(_d IN LISTS INCLUDE_DIRS)
    if(_d)
        list(APPEND _incs "-I${_d}")
    endif()
endforeach()
set(_defs "")
foreach(_d IN LISTS DEFINITIONS)
    if(_d MATCHES "^(_GNU_SOURCE|_DEFAULT_SOURCE|_BSD_SOURCE|_DARWIN_C_SOURCE|_XOPEN_SOURCE|__EXTENSIONS__)")
        message(FATAL_ERROR "the library is built with ${_d}: only _POSIX_C_SOURCE=200809L is allowed")
    endif()
    # The coroutine backend is chosen below, both ways, whatever this
    # build's (a -DWEFT_CO_LABELS=ON build checks the default one too).
    if(_d AND NOT _d MATCHES "^(_POSIX_C_SOURCE|WEFT_CO_LABELS)")
        list(APPEND _defs "-D${_d}")
    endif()
endforeach()

file(REMOVE_RECURSE "${SCRATCH_DIR}")
file(MAKE_DIRECTORY "${SCRATCH_DIR}")

set(_checked 0)
# Runs the compiler; on failure prints the command and its output and stops.
function(compile what)
    execute_process(COMMAND "${CC}" ${ARGN} RESULT_VARIABLE _rc OUTPUT_VARIABLE _out
                    ERROR_VARIABLE _out)
    if(NOT _rc STREQUAL "0")
        string(JOIN " " _cmd "${CC}" ${ARGN})
        message(FATAL_ERROR "${what}: not portable C11 + POSIX.1-2008:\n  ${_cmd}\n${_out}")
    endif()
    math(EXPR _n "${_checked} + 1")
    set(_checked ${_n} PARENT_SCOPE)
endfunction()

# ---- 1. public headers, each on its own ----
foreach(_h IN LISTS HEADERS)
    get_filename_component(_name "${_h}" NAME_WE)
    set(_tu "${SCRATCH_DIR}/header_${_name}.c")
    file(WRITE "${_tu}" "#include \"${_h}\"\nint weft_portability_check_tu(void);\n")
    compile("${_h} alone" ${_strict} ${_incs} -fsyntax-only "${_tu}")
    compile("${_h} alone, POSIX" ${_strict} -D_POSIX_C_SOURCE=200809L ${_incs} -fsyntax-only
            "${_tu}")
endforeach()

# ---- 2. library sources, both coroutine backends ----
foreach(_src IN LISTS SOURCES)
    if(NOT _src MATCHES "\\.c$")
        continue()
    endif()
    foreach(_variant "" "-DWEFT_CO_LABELS=1")
        compile("${_src} ${_variant}" ${_strict} -D_POSIX_C_SOURCE=200809L ${_defs} ${_variant}
                ${_incs} -fsyntax-only "${_src}")
    endforeach()
endforeach()

# ---- 3. GNU keywords the pedantic diagnostics do not flag ----
execute_process(COMMAND "${CC}" -E -fdirectives-only -x c /dev/null RESULT_VARIABLE _rc
                OUTPUT_QUIET ERROR_QUIET)
if(NOT _rc STREQUAL "0")
    message(STATUS "${CC} has no -fdirectives-only: keyword scan skipped (gcc runs it)")
    message(STATUS "portability: ${_checked} compiler runs passed")
    return()
endif()

set(_id "[A-Za-z0-9_]")
set(_gnu_words "__extension__|__attribute__|__attribute|__asm__|__asm|asm|__typeof__|__typeof")
string(APPEND _gnu_words "|typeof|__auto_type|__label__|__thread|__int128|__builtin_${_id}*")
string(APPEND _gnu_words "|_GNU_SOURCE|_DEFAULT_SOURCE|_BSD_SOURCE|_DARWIN_C_SOURCE")
set(_gnu_re "(^|[^A-Za-z0-9_])(${_gnu_words})([^A-Za-z0-9_]|$)")
set(_problems "")
foreach(_src IN LISTS SOURCES)
    if(NOT _src MATCHES "\\.c$")
        continue()
    endif()
    get_filename_component(_name "${_src}" NAME_WE)
    set(_pp1 "${SCRATCH_DIR}/${_name}.directives.i")
    set(_pp2 "${SCRATCH_DIR}/${_name}.i")
    # Conditionals and includes resolved, macros left alone, then comments
    # removed (-fpreprocessed keeps the line markers).
    compile("${_src} directives" -std=c11 -D_POSIX_C_SOURCE=200809L ${_defs} ${_c_flags} ${_incs}
            -E -fdirectives-only -dD "${_src}" -o "${_pp1}")
    compile("${_src} comments" -fpreprocessed -dD -E -x c "${_pp1}" -o "${_pp2}")
    file(STRINGS "${_pp2}" _lines)
    set(_file "")
    set(_ours OFF)
    foreach(_line IN LISTS _lines)
        if(_line MATCHES "^# [0-9]+ \"([^\"]*)\"")
            set(_file "${CMAKE_MATCH_1}")
            string(FIND "${_file}" "${SOURCE_DIR}/" _pos)
            if(_pos EQUAL 0)
                set(_ours ON)
            else()
                set(_ours OFF)
            endif()
            continue()
        endif()
        if(NOT _ours OR NOT _line MATCHES "${_gnu_re}")
            continue()
        endif()
        # Not inside a string or character literal.
        string(REGEX REPLACE "\"([^\"\\\\]|\\\\.)*\"" "\"\"" _code "${_line}")
        string(REGEX REPLACE "'([^'\\\\]|\\\\.)*'" "''" _code "${_code}")
        # The sanctioned exceptions, each behind a feature check: the two
        # diagnostic-only attribute macros of common.h, the optimisation
        # hint WEFT__COLD of assert.h, and the feature macro symbol.c needs
        # for dladdr.
        if(_file MATCHES "/include/weft/common\\.h$" AND
           _code MATCHES "^#define WEFT_(NODISCARD|PRINTF)")
            continue()
        endif()
        if(_file MATCHES "/src/assert\\.h$" AND _code MATCHES "^#define WEFT__COLD")
            continue()
        endif()
        if(_file MATCHES "/src/symbol\\.c$" AND _code MATCHES "^#define _(GNU|DARWIN_C)_SOURCE")
            continue()
        endif()
        if(_code MATCHES "${_gnu_re}")
            list(APPEND _problems "${_file}: ${CMAKE_MATCH_2}: ${_line}")
        endif()
    endforeach()
endforeach()
list(REMOVE_DUPLICATES _problems)
if(_problems)
    list(JOIN _problems "\n  " _text)
    message(FATAL_ERROR "compiler extensions outside the labels backend:\n  ${_text}")
endif()
message(STATUS "portability: ${_checked} compiler runs passed; no GNU keyword in weft's own code")
