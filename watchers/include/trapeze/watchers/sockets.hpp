// circus's [socket:NAME]: listening sockets the arbiter binds and its children inherit, so a
// process can be replaced without the socket ever closing.
#pragma once

#include <stdexcept>
#include <string>

#include "trapeze/conf/config.hpp"
#include "trapeze/loop/fd.hpp"

namespace trapeze::watchers {

/// Thrown when a socket cannot be made; what() reads "socket web: cannot bind
/// 127.0.0.1:8080: Address already in use".
class SocketError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct BoundSocket {
  std::string name;
  loop::UniqueFd fd;     // close-on-exec: the spawner clears it for the children that use it
  std::string location;  // "127.0.0.1:8080" (the port the kernel chose for port 0) or the path
  std::string path;      // AF_UNIX: removed when the socket is closed
  BoundSocket() = default;
  BoundSocket(BoundSocket&& other) noexcept;
  BoundSocket& operator=(BoundSocket&& other) noexcept;
  ~BoundSocket();
};

/// Makes, binds and (for stream and seqpacket types) listens, as circus does: SO_REUSEADDR,
/// SO_REUSEPORT when asked, SO_BINDTODEVICE for `interface`, non-blocking unless `blocking`,
/// a unix path unlinked first only with `replace` and bound under `umask`.
BoundSocket bind_socket(const conf::SocketConfig& cfg);

/// circus's listsockets text: "socket 'web' at 127.0.0.1:8080".
std::string describe(const BoundSocket& s);

}  // namespace trapeze::watchers
