// ZeroMQ CURVE for TCP endpoints: key files, the server side of the bus and control sockets,
// and the client side of the trapeze command.
#pragma once

#include <set>
#include <string>

#include <zmq.hpp>

namespace trapeze::curve {

struct Keypair {
  std::string public_key, secret_key;  // Z85, 40 characters each
};

Keypair generate();

/// Writes PATH (both keys, mode 0600, refused if it exists) and PATH.pub (the public key).
/// Throws std::runtime_error naming the file.
void write_keypair(const std::string& path, const Keypair& keys);

/// Reads a keypair file made by write_keypair. Throws std::runtime_error naming the file.
Keypair read_keypair(const std::string& path);

/// A public key given as Z85 text, or as a file that holds one (a .pub file, or a keypair
/// file). Throws std::runtime_error.
std::string read_public_key(const std::string& text_or_path);

/// The public keys listed in PATH, one per line (a line starting with '#' is a comment). Throws.
std::set<std::string> read_public_keys(const std::string& path);

/// Makes `socket` a CURVE server with `keys`.
void make_server(zmq::socket_t& socket, const Keypair& keys);

/// When $TRAPEZE_CURVE_SERVER_KEY is set (Z85 text or a file), makes `socket` a CURVE
/// client of that server, with the keypair file $TRAPEZE_CURVE_KEYPAIR or a fresh keypair.
/// Throws std::runtime_error.
void client_from_env(zmq::socket_t& socket);

}  // namespace trapeze::curve
