// File descriptors: pipe2(2), socketpair(2), close/dup2/fcntl, message-preserving
// send/recv, and SCM_RIGHTS fd passing over UNIX sockets.
#include "common.h"
#include <cstring>
#include <fcntl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>
#include <vector>

namespace unixproc {

static Napi::Value Pair(Napi::Env env, int r, int fds[2]) {
  if (r == -1) return Errno(env);
  Napi::Array out = Napi::Array::New(env, 2);
  out.Set(0u, Num(env, fds[0]));
  out.Set(1u, Num(env, fds[1]));
  return out;
}

// pipe(cloexec) -> [readFd, writeFd]
static Napi::Value Pipe(const Napi::CallbackInfo& info) {
  int fds[2];
  int r = pipe2(fds, info[0].ToBoolean() ? O_CLOEXEC : 0);
  return Pair(info.Env(), r, fds);
}

// socketpair(type, cloexec) with type 1 STREAM, 2 DGRAM, 5 SEQPACKET
static Napi::Value SocketPair(const Napi::CallbackInfo& info) {
  int fds[2];
  int type = IntArg(info, 0) | (info[1].ToBoolean() ? SOCK_CLOEXEC : 0);
  int r = socketpair(AF_UNIX, type, 0, fds);
  return Pair(info.Env(), r, fds);
}

static Napi::Value Close(const Napi::CallbackInfo& info) {
  // No retry on EINTR: on Linux the fd is released even when close reports it.
  if (close(IntArg(info, 0)) == -1 && errno != EINTR) return Errno(info.Env());
  return Num(info.Env(), 0);
}

static Napi::Value Dup2(const Napi::CallbackInfo& info) {
  int r = RetryEintr([&] { return dup2(IntArg(info, 0), IntArg(info, 1)); });
  return r == -1 ? Errno(info.Env()) : Num(info.Env(), r);
}

static Napi::Value Dup(const Napi::CallbackInfo& info) {
  int r = fcntl(IntArg(info, 0), F_DUPFD_CLOEXEC, 3);
  return r == -1 ? Errno(info.Env()) : Num(info.Env(), r);
}

// setCloexec(fd, on) -> 0 or -errno
static Napi::Value SetCloexec(const Napi::CallbackInfo& info) {
  int fd = IntArg(info, 0);
  int flags = fcntl(fd, F_GETFD);
  if (flags == -1) return Errno(info.Env());
  flags = info[1].ToBoolean() ? (flags | FD_CLOEXEC) : (flags & ~FD_CLOEXEC);
  if (fcntl(fd, F_SETFD, flags) == -1) return Errno(info.Env());
  return Num(info.Env(), 0);
}

// getFdFlags(fd) -> { cloexec, nonblock } bits as a number (1 = cloexec, 2 = nonblock) or -errno
static Napi::Value GetFdFlags(const Napi::CallbackInfo& info) {
  int fd = IntArg(info, 0);
  int fdf = fcntl(fd, F_GETFD);
  if (fdf == -1) return Errno(info.Env());
  int fl = fcntl(fd, F_GETFL);
  if (fl == -1) return Errno(info.Env());
  return Num(info.Env(), ((fdf & FD_CLOEXEC) ? 1 : 0) | ((fl & O_NONBLOCK) ? 2 : 0));
}

static Napi::Value SetNonblock(const Napi::CallbackInfo& info) {
  int fd = IntArg(info, 0);
  int fl = fcntl(fd, F_GETFL);
  if (fl == -1) return Errno(info.Env());
  fl = info[1].ToBoolean() ? (fl | O_NONBLOCK) : (fl & ~O_NONBLOCK);
  if (fcntl(fd, F_SETFL, fl) == -1) return Errno(info.Env());
  return Num(info.Env(), 0);
}

// sendmsg(fd, data, fdsToPass, flags) -> bytes sent or -errno
static Napi::Value SendMsg(const Napi::CallbackInfo& info) {
  int fd = IntArg(info, 0);
  Napi::Buffer<char> data = info[1].As<Napi::Buffer<char>>();
  Napi::Array pass = info[2].As<Napi::Array>();
  int flags = IntArg(info, 3) | MSG_NOSIGNAL;
  // Ancillary data needs at least one byte of payload on a STREAM socket; a plain
  // empty send stays empty (a zero-length datagram is a message of its own).
  char dummy = 0;
  bool pad = data.Length() == 0 && pass.Length() > 0;
  iovec iov{pad ? &dummy : data.Data(), pad ? 1 : data.Length()};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  std::vector<char> ctrl;
  if (pass.Length()) {
    size_t bytes = pass.Length() * sizeof(int);
    ctrl.assign(CMSG_SPACE(bytes), 0);
    msg.msg_control = ctrl.data();
    msg.msg_controllen = ctrl.size();
    cmsghdr* c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(bytes);
    int* out = reinterpret_cast<int*>(CMSG_DATA(c));
    for (uint32_t i = 0; i < pass.Length(); i++) out[i] = pass.Get(i).As<Napi::Number>().Int32Value();
  }
  ssize_t r = RetryEintr([&] { return sendmsg(fd, &msg, flags); });
  return r == -1 ? Errno(info.Env()) : Num(info.Env(), static_cast<double>(r));
}

// recvmsg(fd, maxBytes, maxFds, flags) -> [Buffer, fds[], truncated] or -errno.
// Received fds get FD_CLOEXEC (MSG_CMSG_CLOEXEC) like every fd Node opens itself.
static Napi::Value RecvMsg(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = IntArg(info, 0);
  size_t max = static_cast<size_t>(IntArg(info, 1));
  int maxFds = IntArg(info, 2);
  int flags = IntArg(info, 3) | MSG_CMSG_CLOEXEC;
  std::vector<char> buf(max ? max : 1);
  std::vector<char> ctrl(CMSG_SPACE(sizeof(int) * (maxFds > 0 ? maxFds : 1)), 0);
  iovec iov{buf.data(), buf.size()};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  if (maxFds > 0) {
    // CMSG_LEN, not CMSG_SPACE: the space is rounded up and would admit one fd more than asked.
    msg.msg_control = ctrl.data();
    msg.msg_controllen = CMSG_LEN(sizeof(int) * maxFds);
  }
  ssize_t r = RetryEintr([&] { return recvmsg(fd, &msg, flags); });
  if (r == -1) return Errno(env);
  Napi::Array fds = Napi::Array::New(env);
  uint32_t k = 0;
  for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
    if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
    size_t n = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    int* in = reinterpret_cast<int*>(CMSG_DATA(c));
    for (size_t i = 0; i < n; i++) fds.Set(k++, Num(env, in[i]));
  }
  Napi::Array out = Napi::Array::New(env, 3);
  out.Set(0u, Napi::Buffer<char>::Copy(env, buf.data(), max ? static_cast<size_t>(r) : 0));
  out.Set(1u, fds);
  out.Set(2u, Napi::Boolean::New(env, (msg.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) != 0));
  return out;
}

void InitFd(Napi::Env env, Napi::Object exports) {
  exports["pipe"] = Napi::Function::New(env, Pipe);
  exports["socketPair"] = Napi::Function::New(env, SocketPair);
  exports["close"] = Napi::Function::New(env, Close);
  exports["dup2"] = Napi::Function::New(env, Dup2);
  exports["dup"] = Napi::Function::New(env, Dup);
  exports["setCloexec"] = Napi::Function::New(env, SetCloexec);
  exports["getFdFlags"] = Napi::Function::New(env, GetFdFlags);
  exports["setNonblock"] = Napi::Function::New(env, SetNonblock);
  exports["sendMsg"] = Napi::Function::New(env, SendMsg);
  exports["recvMsg"] = Napi::Function::New(env, RecvMsg);
  exports["SOCK_STREAM"] = Num(env, SOCK_STREAM);
  exports["SOCK_DGRAM"] = Num(env, SOCK_DGRAM);
  exports["SOCK_SEQPACKET"] = Num(env, SOCK_SEQPACKET);
  exports["MSG_DONTWAIT"] = Num(env, MSG_DONTWAIT);
  exports["MSG_PEEK"] = Num(env, MSG_PEEK);
}

}  // namespace unixproc
