// Signal dispositions that Node's process.on cannot express: SIG_IGN and SIG_DFL
// set directly with sigaction(2), and a query of the current disposition.
#include "common.h"
#include <csignal>

namespace unixproc {

// setDisposition(sig, 0 = SIG_DFL | 1 = SIG_IGN) -> 0 or -errno
static Napi::Value SetDisposition(const Napi::CallbackInfo& info) {
  struct sigaction sa{};
  sa.sa_handler = IntArg(info, 1) == 1 ? SIG_IGN : SIG_DFL;
  sigemptyset(&sa.sa_mask);
  if (sigaction(IntArg(info, 0), &sa, nullptr) == -1) return Errno(info.Env());
  return Num(info.Env(), 0);
}

// getDisposition(sig) -> 0 = SIG_DFL, 1 = SIG_IGN, 2 = a handler, or -errno
static Napi::Value GetDisposition(const Napi::CallbackInfo& info) {
  struct sigaction sa{};
  if (sigaction(IntArg(info, 0), nullptr, &sa) == -1) return Errno(info.Env());
  if (sa.sa_handler == SIG_DFL) return Num(info.Env(), 0);
  if (sa.sa_handler == SIG_IGN) return Num(info.Env(), 1);
  return Num(info.Env(), 2);
}

void InitSignal(Napi::Env env, Napi::Object exports) {
  exports["setDisposition"] = Napi::Function::New(env, SetDisposition);
  exports["getDisposition"] = Napi::Function::New(env, GetDisposition);
}

}  // namespace unixproc
