# Compiler flags shared by every target of the project, through one interface library.
add_library(pyinspect_flags INTERFACE)
target_compile_options(pyinspect_flags INTERFACE
  -Wall -Wextra -Wpedantic -Wshadow -Wnon-virtual-dtor -Wold-style-cast
  -Wcast-align -Wunused -Woverloaded-virtual -Wimplicit-fallthrough)
if(PYINSPECT_WERROR)
  target_compile_options(pyinspect_flags INTERFACE -Werror)
endif()
if(PYINSPECT_SANITIZE)
  # -O1, as the sanitizers' documentation advises: at -O0 a heap scan ran 30 times slower than
  # the release build, and the stress tests' 30 s limit per run measured the compiler instead.
  target_compile_options(pyinspect_flags INTERFACE
    -O1 -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined)
  target_link_options(pyinspect_flags INTERFACE -fsanitize=address,undefined)
endif()
