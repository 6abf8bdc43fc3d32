// waitpid(2), a non-reaping peek with waitid(WNOWAIT), and pidfds with poll(2) so a
// blocking wait can sleep on exactly the children it is allowed to reap.
#include "common.h"
#include <poll.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>
#include <vector>

namespace unixproc {

// Returns [pid, rawStatus], 0 when WNOHANG found nothing, or -errno.
static Napi::Value Waitpid(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int status = 0;
  pid_t r = RetryEintr([&] { return waitpid(IntArg(info, 0), &status, IntArg(info, 1)); });
  if (r == -1) return Errno(env);
  if (r == 0) return Num(env, 0);
  Napi::Array out = Napi::Array::New(env, 2);
  out.Set(0u, Num(env, r));
  out.Set(1u, Num(env, status));
  return out;
}

// Looks at an exited child without reaping it: [pid, rawStatus] in waitpid's encoding,
// 0 when it has not exited, or -errno.
static Napi::Value PeekExited(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  siginfo_t si{};
  int r = RetryEintr([&] { return waitid(P_PID, IntArg(info, 0), &si, WEXITED | WNOHANG | WNOWAIT); });
  if (r == -1) return Errno(env);
  if (si.si_pid == 0) return Num(env, 0);
  int status = si.si_code == CLD_EXITED ? (si.si_status & 0xff) << 8
                                        : (si.si_status & 0x7f) | (si.si_code == CLD_DUMPED ? 0x80 : 0);
  Napi::Array out = Napi::Array::New(env, 2);
  out.Set(0u, Num(env, si.si_pid));
  out.Set(1u, Num(env, status));
  return out;
}

static Napi::Value PidfdOpen(const Napi::CallbackInfo& info) {
  long r = syscall(SYS_pidfd_open, IntArg(info, 0), 0);
  return r == -1 ? Errno(info.Env()) : Num(info.Env(), r);
}

// poll(2) for readability on a list of fds; returns how many are ready, or -errno.
static Napi::Value PollIn(const Napi::CallbackInfo& info) {
  Napi::Array fds = info[0].As<Napi::Array>();
  std::vector<pollfd> p(fds.Length());
  for (uint32_t i = 0; i < fds.Length(); i++) p[i] = {fds.Get(i).As<Napi::Number>().Int32Value(), POLLIN, 0};
  int r = poll(p.data(), p.size(), IntArg(info, 1));
  if (r == -1) return errno == EINTR ? Num(info.Env(), 0) : Errno(info.Env());
  return Num(info.Env(), r);
}

void InitWait(Napi::Env env, Napi::Object exports) {
  exports["waitpid"] = Napi::Function::New(env, Waitpid);
  exports["peekExited"] = Napi::Function::New(env, PeekExited);
  exports["pidfdOpen"] = Napi::Function::New(env, PidfdOpen);
  exports["pollIn"] = Napi::Function::New(env, PollIn);
  exports["WNOHANG"] = Num(env, WNOHANG);
  exports["WUNTRACED"] = Num(env, WUNTRACED);
  exports["WCONTINUED"] = Num(env, WCONTINUED);
}

}  // namespace unixproc
