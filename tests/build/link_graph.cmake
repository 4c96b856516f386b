# link_graph.cmake — dump CMake's own link graph for tools/check_layers.py.
#
# include() this from any CMakeLists of the project: at the end of the
# top-level directory's configure (cmake_language DEFER, so every
# add_subdirectory has run, fuzz/ included) it writes one line per
# buildsystem target (IMPORTED ones are not buildsystem targets) to
# <build>/tests/build/link_graph.tsv:
#   name TAB type TAB SOURCE_DIR TAB BINARY_DIR TAB SOURCES TAB LINK_LIBRARIES TAB INTERFACE_LINK_LIBRARIES
# (lists ';'-separated, as CMake holds them: what target_link_libraries said,
# generator expressions unevaluated). tools/check_layers.py's self-test
# includes it from its fake tree too.
function(rn_layers_dump_graph)
  set(lines "")
  set(todo "${CMAKE_SOURCE_DIR}")
  while(todo)
    list(POP_FRONT todo d)
    get_property(subs DIRECTORY "${d}" PROPERTY SUBDIRECTORIES)
    list(APPEND todo ${subs})
    get_property(tgts DIRECTORY "${d}" PROPERTY BUILDSYSTEM_TARGETS)
    foreach(t IN LISTS tgts)
      set(row "${t}")
      foreach(prop TYPE SOURCE_DIR BINARY_DIR SOURCES LINK_LIBRARIES INTERFACE_LINK_LIBRARIES)
        get_target_property(v ${t} ${prop})
        if(NOT v)
          set(v "")
        endif()
        string(APPEND row "\t${v}")
      endforeach()
      string(APPEND lines "${row}\n")
    endforeach()
  endwhile()
  file(WRITE "${CMAKE_BINARY_DIR}/tests/build/link_graph.tsv" "${lines}")
endfunction()
cmake_language(DEFER DIRECTORY "${CMAKE_SOURCE_DIR}" CALL rn_layers_dump_graph)
