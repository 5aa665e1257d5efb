# Installing for plugin authors (CMake package and pkg-config file) and the .deb (CPack).
include(CMakePackageConfigHelpers)

install(EXPORT trapezeTargets NAMESPACE trapeze:: DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/trapeze COMPONENT dev)
configure_package_config_file(${CMAKE_CURRENT_LIST_DIR}/trapezeConfig.cmake.in
  ${CMAKE_CURRENT_BINARY_DIR}/trapezeConfig.cmake
  INSTALL_DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/trapeze
  PATH_VARS TRAPEZE_PLUGIN_INSTALL_DIR)
write_basic_package_version_file(${CMAKE_CURRENT_BINARY_DIR}/trapezeConfigVersion.cmake
  COMPATIBILITY SameMajorVersion ARCH_INDEPENDENT)
install(FILES ${CMAKE_CURRENT_BINARY_DIR}/trapezeConfig.cmake ${CMAKE_CURRENT_BINARY_DIR}/trapezeConfigVersion.cmake
  DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/trapeze COMPONENT dev)

# The .pc file finds its prefix from where it is installed, so `cmake --install --prefix` works.
file(RELATIVE_PATH TRAPEZE_PC_TO_PREFIX "/${CMAKE_INSTALL_LIBDIR}/pkgconfig" "/")
configure_file(${CMAKE_CURRENT_LIST_DIR}/trapeze.pc.in ${CMAKE_CURRENT_BINARY_DIR}/trapeze.pc @ONLY)
install(FILES ${CMAKE_CURRENT_BINARY_DIR}/trapeze.pc DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig COMPONENT dev)
install(DIRECTORY DESTINATION ${TRAPEZE_PLUGIN_INSTALL_DIR} COMPONENT runtime)
# The systemd unit (Type=notify) and the user documentation.
install(FILES packaging/trapeze.service DESTINATION lib/systemd/system COMPONENT runtime)
install(DIRECTORY docs/ DESTINATION ${CMAKE_INSTALL_DOCDIR} COMPONENT runtime)
install(FILES packaging/trapeze.bash-completion DESTINATION ${CMAKE_INSTALL_DATADIR}/bash-completion/completions
        RENAME trapeze COMPONENT runtime)

set(CPACK_PACKAGE_NAME trapeze)
set(CPACK_PACKAGE_VENDOR "trapeze")
set(CPACK_PACKAGE_CONTACT "trapeze maintainers <trapeze@localhost>")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "${PROJECT_DESCRIPTION}")
set(CPACK_GENERATOR DEB)
# The binary's built-in plugin directory comes from CMAKE_INSTALL_PREFIX: package under the
# same prefix (configure with -DCMAKE_INSTALL_PREFIX=/usr for a distribution-style .deb).
set(CPACK_PACKAGING_INSTALL_PREFIX "${CMAKE_INSTALL_PREFIX}")
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_SECTION admin)
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
set(CPACK_STRIP_FILES ON)
include(CPack)
