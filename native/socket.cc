// Listening sockets made directly with socket(2), bind(2) and listen(2), so a preforking
// master can own them without accepting on them (a Node net.Server would accept in the
// master too) and hand the bare fds to its workers and to a re-executed master.
#include "common.h"
#include <arpa/inet.h>
#include <cstring>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

namespace unixproc {

// bind(2) then listen(2); on failure the socket is closed and -errno returned.
static Napi::Value BindAndListen(Napi::Env env, int fd, const sockaddr* addr, socklen_t len, int backlog) {
  if (bind(fd, addr, len) == -1 || listen(fd, backlog) == -1) {
    int err = errno;
    close(fd);
    return Num(env, -err);
  }
  return Num(env, fd);
}

// listenInet(ip, port, backlog, ipv6Only) -> fd or -errno. ip is numeric (v4 or v6).
static Napi::Value ListenInet(const Napi::CallbackInfo& info) {
  std::string ip = info[0].As<Napi::String>().Utf8Value();
  int port = IntArg(info, 1);
  int backlog = IntArg(info, 2);
  sockaddr_storage ss{};
  socklen_t len;
  int family;
  auto* v4 = reinterpret_cast<sockaddr_in*>(&ss);
  auto* v6 = reinterpret_cast<sockaddr_in6*>(&ss);
  if (inet_pton(AF_INET, ip.c_str(), &v4->sin_addr) == 1) {
    family = v4->sin_family = AF_INET;
    v4->sin_port = htons(port);
    len = sizeof(*v4);
  } else if (inet_pton(AF_INET6, ip.c_str(), &v6->sin6_addr) == 1) {
    family = v6->sin6_family = AF_INET6;
    v6->sin6_port = htons(port);
    len = sizeof(*v6);
  } else {
    return Num(info.Env(), -EINVAL);
  }
  int fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd == -1) return Errno(info.Env());
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (family == AF_INET6 && info[3].ToBoolean()) setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
  return BindAndListen(info.Env(), fd, reinterpret_cast<sockaddr*>(&ss), len, backlog);
}

// listenUnix(path, backlog) -> fd or -errno
static Napi::Value ListenUnix(const Napi::CallbackInfo& info) {
  std::string path = info[0].As<Napi::String>().Utf8Value();
  sockaddr_un sun{};
  if (path.size() >= sizeof(sun.sun_path)) return Num(info.Env(), -ENAMETOOLONG);
  sun.sun_family = AF_UNIX;
  memcpy(sun.sun_path, path.c_str(), path.size() + 1);
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd == -1) return Errno(info.Env());
  return BindAndListen(info.Env(), fd, reinterpret_cast<sockaddr*>(&sun), sizeof sun, IntArg(info, 1));
}

// sockName(fd) -> [family ('inet' | 'inet6' | 'unix'), address, port] or -errno
static Napi::Value SockName(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  if (getsockname(IntArg(info, 0), reinterpret_cast<sockaddr*>(&ss), &len) == -1) return Errno(env);
  Napi::Array out = Napi::Array::New(env, 3);
  char buf[INET6_ADDRSTRLEN] = {0};
  if (ss.ss_family == AF_INET) {
    auto* a = reinterpret_cast<sockaddr_in*>(&ss);
    inet_ntop(AF_INET, &a->sin_addr, buf, sizeof buf);
    out.Set(0u, "inet");
    out.Set(1u, buf);
    out.Set(2u, Num(env, ntohs(a->sin_port)));
  } else if (ss.ss_family == AF_INET6) {
    auto* a = reinterpret_cast<sockaddr_in6*>(&ss);
    inet_ntop(AF_INET6, &a->sin6_addr, buf, sizeof buf);
    out.Set(0u, "inet6");
    out.Set(1u, buf);
    out.Set(2u, Num(env, ntohs(a->sin6_port)));
  } else if (ss.ss_family == AF_UNIX) {
    auto* a = reinterpret_cast<sockaddr_un*>(&ss);
    out.Set(0u, "unix");
    out.Set(1u, std::string(a->sun_path));
    out.Set(2u, Num(env, 0));
  } else {
    return Num(env, -EAFNOSUPPORT);
  }
  return out;
}

// sockType(fd) -> SOCK_STREAM / SOCK_DGRAM / SOCK_SEQPACKET or -errno (e.g. ENOTSOCK)
static Napi::Value SockType(const Napi::CallbackInfo& info) {
  int type = 0;
  socklen_t len = sizeof type;
  if (getsockopt(IntArg(info, 0), SOL_SOCKET, SO_TYPE, &type, &len) == -1) return Errno(info.Env());
  return Num(info.Env(), type);
}

void InitSocket(Napi::Env env, Napi::Object exports) {
  exports["listenInet"] = Napi::Function::New(env, ListenInet);
  exports["listenUnix"] = Napi::Function::New(env, ListenUnix);
  exports["sockName"] = Napi::Function::New(env, SockName);
  exports["sockType"] = Napi::Function::New(env, SockType);
}

}  // namespace unixproc
