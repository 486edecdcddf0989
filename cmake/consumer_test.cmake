# Builds and runs tests/consumer/main.c the three ways a user would consume
# weft, all offline.
#
#   cmake -DWEFT_SOURCE_DIR=... -DWEFT_BINARY_DIR=... -DSCRATCH_DIR=...
#         -DMODE=find_package|add_subdirectory|pkg_config
#         [-DCONFIG=Release] [-DCMAKE_GENERATOR=...] [-DC_COMPILER=cc]
#         [-DTOOLCHAIN_FILE=...] [-DC_FLAGS="-m32 ..."]
#         -P consumer_test.cmake
#
# find_package: installs WEFT_BINARY_DIR into SCRATCH_DIR/prefix, then
#   configures tests/consumer with CMAKE_PREFIX_PATH pointing there.
# add_subdirectory: configures tests/consumer with add_subdirectory(WEFT_SOURCE_DIR).
# pkg_config: installs as above, then compiles main.c with
#   `C_COMPILER main.c $(pkg-config --cflags --libs weft)`.
# Each mode finally runs the program and expects "ok" on stdout.
# TOOLCHAIN_FILE and C_FLAGS are those weft itself was configured with (a
# 32-bit build, say), so that the consumer targets the same ABI.

cmake_minimum_required(VERSION 3.20)

foreach(_var WEFT_SOURCE_DIR WEFT_BINARY_DIR SCRATCH_DIR MODE)
    if(NOT DEFINED ${_var} OR "${${_var}}" STREQUAL "")
        message(FATAL_ERROR "consumer_test.cmake: -D${_var}=... is required")
    endif()
endforeach()
if(NOT C_COMPILER)
    set(C_COMPILER cc)
endif()
set(_consumer_src "${WEFT_SOURCE_DIR}/tests/consumer")
set(_prefix "${SCRATCH_DIR}/prefix")
set(_build "${SCRATCH_DIR}/build")

# Runs a command; on failure prints its output and stops.
function(run what)
    string(JOIN " " _cmd ${ARGN})
    message(STATUS "${what}: ${_cmd}")
    execute_process(COMMAND ${ARGN} RESULT_VARIABLE _rc OUTPUT_VARIABLE _out
                    ERROR_VARIABLE _out)
    if(NOT _rc STREQUAL "0")
        message(FATAL_ERROR "${what} failed (${_rc}):\n  ${_cmd}\n${_out}")
    endif()
    set(run_output "${_out}" PARENT_SCOPE)
endfunction()

function(expect_ok exe)
    run("run consumer" "${exe}")
    if(NOT run_output MATCHES "^ok\r?\n?$")
        message(FATAL_ERROR "consumer printed [${run_output}], expected [ok]")
    endif()
    message(STATUS "consumer printed ok")
endfunction()

set(_config_args "")
set(_build_config_args "")
if(CONFIG)
    set(_config_args "-DCMAKE_BUILD_TYPE=${CONFIG}")
    set(_build_config_args --config "${CONFIG}")
endif()
set(_gen_args "")
if(CMAKE_GENERATOR)
    set(_gen_args -G "${CMAKE_GENERATOR}")
endif()
if(TOOLCHAIN_FILE)
    list(APPEND _gen_args "-DCMAKE_TOOLCHAIN_FILE=${TOOLCHAIN_FILE}")
endif()
separate_arguments(_c_flags UNIX_COMMAND "${C_FLAGS}")

file(REMOVE_RECURSE "${SCRATCH_DIR}")
file(MAKE_DIRECTORY "${SCRATCH_DIR}")

if(MODE STREQUAL "find_package" OR MODE STREQUAL "pkg_config")
    if(MODE STREQUAL "pkg_config")
        find_program(_pkg_config NAMES pkg-config pkgconf)
        if(NOT _pkg_config)
            message("WEFT_TEST_SKIPPED: pkg-config not found; install pkg-config to run this test")
            if(CMAKE_VERSION VERSION_GREATER_EQUAL 3.29)
                cmake_language(EXIT 77)
            endif()
            return()
        endif()
    endif()
    run("install" "${CMAKE_COMMAND}" --install "${WEFT_BINARY_DIR}" --prefix "${_prefix}"
        ${_build_config_args})
endif()

if(MODE STREQUAL "find_package")
    run("configure" "${CMAKE_COMMAND}" -S "${_consumer_src}" -B "${_build}" ${_gen_args}
        "-DCMAKE_C_COMPILER=${C_COMPILER}" ${_config_args}
        -DWEFT_CONSUMER_MODE=find_package "-DCMAKE_PREFIX_PATH=${_prefix}"
        -DCMAKE_FIND_USE_PACKAGE_REGISTRY=OFF)
    # It must have found the copy just installed, not some other one.
    file(STRINGS "${_build}/CMakeCache.txt" _weft_dir REGEX "^weft_DIR:")
    string(REGEX REPLACE "^weft_DIR:[^=]*=" "" _weft_dir "${_weft_dir}")
    file(REAL_PATH "${_weft_dir}" _weft_dir)
    file(REAL_PATH "${_prefix}" _real_prefix)
    string(FIND "${_weft_dir}" "${_real_prefix}/" _pos)
    if(NOT _pos EQUAL 0)
        message(FATAL_ERROR "find_package(weft) found ${_weft_dir}, not the copy in ${_prefix}")
    endif()
    run("build" "${CMAKE_COMMAND}" --build "${_build}" ${_build_config_args})
elseif(MODE STREQUAL "add_subdirectory")
    run("configure" "${CMAKE_COMMAND}" -S "${_consumer_src}" -B "${_build}" ${_gen_args}
        "-DCMAKE_C_COMPILER=${C_COMPILER}" ${_config_args}
        -DWEFT_CONSUMER_MODE=add_subdirectory "-DWEFT_SOURCE_DIR=${WEFT_SOURCE_DIR}")
    # Under add_subdirectory weft must not build its tests, examples or bench.
    file(STRINGS "${_build}/CMakeCache.txt" _opts REGEX "^WEFT_BUILD_(TESTS|EXAMPLES|BENCH):")
    foreach(_opt IN LISTS _opts)
        if(NOT _opt MATCHES "=OFF$")
            message(FATAL_ERROR "under add_subdirectory expected OFF: ${_opt}")
        endif()
    endforeach()
    run("build" "${CMAKE_COMMAND}" --build "${_build}" ${_build_config_args})
elseif(MODE STREQUAL "pkg_config")
    set(ENV{PKG_CONFIG_PATH} "${_prefix}/lib/pkgconfig")
    file(GLOB _pcdirs "${_prefix}/*/pkgconfig" "${_prefix}/*/*/pkgconfig")
    foreach(_d IN LISTS _pcdirs)
        set(ENV{PKG_CONFIG_PATH} "$ENV{PKG_CONFIG_PATH}:${_d}")
    endforeach()
    # Consumers see only what weft.pc gives them, never the build tree.
    unset(ENV{PKG_CONFIG_LIBDIR})
    run("pkg-config" "${_pkg_config}" --cflags --libs weft)
    string(STRIP "${run_output}" _flags)
    separate_arguments(_flags UNIX_COMMAND "${_flags}")
    file(MAKE_DIRECTORY "${_build}")
    execute_process(COMMAND "${C_COMPILER}" --version OUTPUT_VARIABLE _ver ERROR_QUIET)
    set(_lint "")
    if(NOT _ver MATCHES "clang" AND _ver MATCHES "GCC|gcc|Free Software Foundation")
        set(_lint -Werror -Werror=jump-misses-init)
    endif()
    run("compile" "${C_COMPILER}" ${_c_flags} -std=c11 -Wall -Wextra -Wpedantic ${_lint}
        "${_consumer_src}/main.c" -o "${_build}/consumer" ${_flags})
    if(_lint)
        execute_process(COMMAND "${C_COMPILER}" ${_c_flags} -std=c11 -Wall ${_lint} -c
                                "${_consumer_src}/lint_probe.c" -o "${_build}/lint_probe.o"
                                ${_flags}
                        RESULT_VARIABLE _rc OUTPUT_VARIABLE _out ERROR_VARIABLE _out)
        if(_rc STREQUAL "0" OR NOT _out MATCHES "jump-misses-init")
            message(FATAL_ERROR "the lint probe compiled: -Wjump-misses-init does not reach "
                                "weft's headers through pkg-config\n${_out}")
        endif()
        message(STATUS "lint probe refused, as it must")
    endif()
else()
    message(FATAL_ERROR "unknown MODE '${MODE}'")
endif()

# The coroutine lint must reach code built against weft's headers: the
# probe (a local across a suspension) must fail with jump-misses-init.
if(EXISTS "${_build}/lint_probe.expect")
    file(STRINGS "${_build}/lint_probe.expect" _expect)
    if(_expect STREQUAL "fail")
        execute_process(COMMAND "${CMAKE_COMMAND}" --build "${_build}" --target lint_probe
                                ${_build_config_args}
                        RESULT_VARIABLE _rc OUTPUT_VARIABLE _out ERROR_VARIABLE _out)
        if(_rc STREQUAL "0" OR NOT _out MATCHES "jump-misses-init")
            message(FATAL_ERROR "the lint probe built (or failed for another reason): "
                                "-Wjump-misses-init does not reach weft's headers\n${_out}")
        endif()
        message(STATUS "lint probe refused, as it must: -Wjump-misses-init reaches the headers")
    else()
        message(STATUS "lint probe skipped: not GCC")
    endif()
endif()

if(EXISTS "${_build}/consumer")
    expect_ok("${_build}/consumer")
elseif(CONFIG AND EXISTS "${_build}/${CONFIG}/consumer")
    expect_ok("${_build}/${CONFIG}/consumer")
else()
    message(FATAL_ERROR "consumer executable not found under ${_build}")
endif()
