// Shared helpers for the thin syscall wrappers: every wrapper reports failure as a
// negative errno number and leaves naming, messages and policy to TypeScript.
#pragma once
#include <napi.h>
#include <cerrno>

namespace unixproc {

inline Napi::Value Errno(Napi::Env env) { return Napi::Number::New(env, -errno); }
inline Napi::Value Num(Napi::Env env, double v) { return Napi::Number::New(env, v); }

// Retries a syscall interrupted by a signal (libuv installs handlers with SA_RESTART,
// but not every call restarts, e.g. poll and waitid with a timeout).
template <typename F>
inline auto RetryEintr(F f) -> decltype(f()) {
  decltype(f()) r;
  do { r = f(); } while (r == -1 && errno == EINTR);
  return r;
}

inline int IntArg(const Napi::CallbackInfo& info, size_t i) {
  return info[i].As<Napi::Number>().Int32Value();
}

void InitFork(Napi::Env env, Napi::Object exports);
void InitProcess(Napi::Env env, Napi::Object exports);
void InitWait(Napi::Env env, Napi::Object exports);
void InitSignal(Napi::Env env, Napi::Object exports);
void InitRlimit(Napi::Env env, Napi::Object exports);
void InitTitle(Napi::Env env, Napi::Object exports);
void InitFd(Napi::Env env, Napi::Object exports);
void InitSocket(Napi::Env env, Napi::Object exports);
void InitShm(Napi::Env env, Napi::Object exports);

}  // namespace unixproc
