# 32-bit x86 Linux build on an x86-64 Debian/Ubuntu host (multilib).
#
#   apt-get install gcc-multilib            # -m32 for gcc and clang
#   dpkg --add-architecture i386 && apt-get update
#   apt-get install libcmocka-dev:i386      # only for the tests
#   cmake -S . -B build-m32 -DCMAKE_TOOLCHAIN_FILE=cmake/toolchains/i686-linux-gnu.cmake
#
# Works with gcc or clang (-DCMAKE_C_COMPILER=clang).  Libraries are looked up
# in Debian's i386 multiarch directories (/usr/lib/i386-linux-gnu), so
# find_package(cmocka) and pkg-config find the 32-bit cmocka, never the host's.

set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR i686)

set(CMAKE_C_FLAGS_INIT "-m32")
set(CMAKE_EXE_LINKER_FLAGS_INIT "-m32")
set(CMAKE_SHARED_LINKER_FLAGS_INIT "-m32")
set(CMAKE_MODULE_LINKER_FLAGS_INIT "-m32")

# Debian's multiarch triplet for i386: find_package/find_library search
# <prefix>/lib/i386-linux-gnu (and its cmake/ directory) first.
set(CMAKE_LIBRARY_ARCHITECTURE i386-linux-gnu)
# Never fall back to the 64-bit copies in lib64/ or lib/x86_64-linux-gnu.
set(FIND_LIBRARY_USE_LIB64_PATHS OFF)
set(CMAKE_FIND_LIBRARY_CUSTOM_LIB_SUFFIX "")
set(ENV{PKG_CONFIG_LIBDIR} "/usr/lib/i386-linux-gnu/pkgconfig:/usr/share/pkgconfig")
