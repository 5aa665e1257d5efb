#include "trapeze/ctl/curve.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <stdexcept>

#include <fmt/format.h>

namespace trapeze::curve {
namespace {

bool is_z85_key(const std::string& s) {
  if (s.size() != 40) return false;
  std::uint8_t raw[32];
  return zmq_z85_decode(raw, s.c_str()) != nullptr;
}

std::string trim(std::string s) {
  auto start = s.find_first_not_of(" \t\r");
  auto end = s.find_last_not_of(" \t\r");
  return start == std::string::npos ? "" : s.substr(start, end - start + 1);
}

std::string slurp(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw std::runtime_error(fmt::format("cannot read '{}': {}", path, std::strerror(errno)));
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

void write_file(const std::string& path, const std::string& text, mode_t mode) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
  if (fd < 0) throw std::runtime_error(fmt::format("cannot create '{}': {}", path, std::strerror(errno)));
  bool ok = ::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size());
  ok = ::fsync(fd) == 0 && ok;
  ::close(fd);
  if (!ok) throw std::runtime_error(fmt::format("cannot write '{}'", path));
}

}  // namespace

Keypair generate() {
  char pub[41], sec[41];
  if (zmq_curve_keypair(pub, sec) != 0)
    throw std::runtime_error("cannot make a CURVE keypair: this libzmq was built without CURVE");
  return {pub, sec};
}

void write_keypair(const std::string& path, const Keypair& keys) {
  write_file(path,
             fmt::format("# trapeze CURVE keypair: keep this file secret\npublic = {}\nsecret = {}\n",
                         keys.public_key, keys.secret_key),
             0600);
  write_file(path + ".pub", keys.public_key + "\n", 0644);
}

Keypair read_keypair(const std::string& path) {
  Keypair keys;
  std::istringstream in(slurp(path));
  for (std::string line; std::getline(in, line);) {
    auto eq = line.find('=');
    if (line.empty() || line[0] == '#' || eq == std::string::npos) continue;
    std::string key = trim(line.substr(0, eq)), value = trim(line.substr(eq + 1));
    if (key == "public") keys.public_key = value;
    if (key == "secret") keys.secret_key = value;
  }
  if (!is_z85_key(keys.public_key) || !is_z85_key(keys.secret_key))
    throw std::runtime_error(
        fmt::format("'{}' is not a CURVE keypair file (make one with trapeze keygen PATH)", path));
  return keys;
}

std::string read_public_key(const std::string& text_or_path) {
  if (is_z85_key(text_or_path)) return text_or_path;
  std::string text = slurp(text_or_path);
  if (text.find("secret") != std::string::npos) return read_keypair(text_or_path).public_key;
  std::string key = trim(text.substr(0, text.find('\n')));
  if (!is_z85_key(key)) throw std::runtime_error(fmt::format("'{}' does not hold a CURVE public key", text_or_path));
  return key;
}

std::set<std::string> read_public_keys(const std::string& path) {
  std::set<std::string> keys;
  std::istringstream in(slurp(path));
  int n = 0;
  for (std::string line; std::getline(in, line);) {
    ++n;
    line = trim(line);
    if (line.empty() || line[0] == '#') continue;  // not inline: '#' is a Z85 digit
    if (!is_z85_key(line)) throw std::runtime_error(fmt::format("{}:{}: not a CURVE public key", path, n));
    keys.insert(line);
  }
  return keys;
}

void make_server(zmq::socket_t& socket, const Keypair& keys) {
  socket.set(zmq::sockopt::curve_server, true);
  socket.set(zmq::sockopt::curve_secretkey, keys.secret_key);
}

void client_from_env(zmq::socket_t& socket) {
  const char* server = std::getenv("TRAPEZE_CURVE_SERVER_KEY");
  if (!server || !*server) return;
  Keypair mine;
  const char* keypair = std::getenv("TRAPEZE_CURVE_KEYPAIR");
  mine = keypair && *keypair ? read_keypair(keypair) : generate();
  socket.set(zmq::sockopt::curve_serverkey, read_public_key(server));
  socket.set(zmq::sockopt::curve_publickey, mine.public_key);
  socket.set(zmq::sockopt::curve_secretkey, mine.secret_key);
}

}  // namespace trapeze::curve
