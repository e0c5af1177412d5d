# Every dependency is a Debian package; scripts/setup.sh installs them.
#
# pyinspect is linked mostly statically (libdw, libelf, Boost.Program_options, libstdc++, and
# spdlog/fmt in their header-only forms): a tool that is run again and again against a process
# should start fast, and a static binary spends about half the start-up time of one that loads
# ten shared libraries (docs/performance.md).
find_package(PkgConfig REQUIRED)
find_package(Threads REQUIRED)
set(Boost_USE_STATIC_LIBS ON)
find_package(Boost 1.71 REQUIRED COMPONENTS program_options)
find_package(nlohmann_json 3.9 REQUIRED)
find_package(fmt REQUIRED)
find_package(spdlog 1.8 REQUIRED)

option(PYINSPECT_STATIC_DEPS "Link libdw, libelf, Boost, libstdc++ and spdlog/fmt statically" ON)
pkg_check_modules(LIBDW REQUIRED IMPORTED_TARGET libdw)
pkg_check_modules(LIBELF REQUIRED IMPORTED_TARGET libelf)

add_library(pyinspect_elfutils INTERFACE)
add_library(pyinspect_logging INTERFACE)
if(PYINSPECT_STATIC_DEPS)
  find_library(LIBDW_A libdw.a REQUIRED)
  find_library(LIBELF_A libelf.a REQUIRED)
  # libdw.a and libelf.a need the compression libraries elfutils was built with.
  find_library(LIBZ z REQUIRED)
  find_library(LIBLZMA lzma)
  find_library(LIBBZ2 bz2)
  find_library(LIBZSTD zstd)
  target_link_libraries(pyinspect_elfutils INTERFACE ${LIBDW_A} ${LIBELF_A} ${LIBZ}
    $<$<BOOL:${LIBLZMA}>:${LIBLZMA}> $<$<BOOL:${LIBBZ2}>:${LIBBZ2}> $<$<BOOL:${LIBZSTD}>:${LIBZSTD}>)
  target_include_directories(pyinspect_elfutils INTERFACE ${LIBDW_INCLUDE_DIRS} ${LIBELF_INCLUDE_DIRS})
  get_target_property(SPDLOG_INCLUDES spdlog::spdlog_header_only INTERFACE_INCLUDE_DIRECTORIES)
  target_include_directories(pyinspect_logging INTERFACE ${SPDLOG_INCLUDES})
  target_compile_definitions(pyinspect_logging INTERFACE SPDLOG_FMT_EXTERNAL)
  target_link_libraries(pyinspect_logging INTERFACE fmt::fmt-header-only Threads::Threads)
  target_link_options(pyinspect_flags INTERFACE -static-libstdc++ -static-libgcc)
else()
  target_link_libraries(pyinspect_elfutils INTERFACE PkgConfig::LIBDW PkgConfig::LIBELF)
  target_link_libraries(pyinspect_logging INTERFACE spdlog::spdlog)
endif()
