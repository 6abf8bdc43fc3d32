// getrlimit(2)/setrlimit(2) with RLIM_INFINITY carried as JS Infinity, since the
// kernel's value (2^64-1) has no exact Number.
#include "common.h"
#include <cmath>
#include <sys/resource.h>

namespace unixproc {

static double FromRlim(rlim_t v) { return v == RLIM_INFINITY ? INFINITY : static_cast<double>(v); }
static rlim_t ToRlim(double v) { return std::isinf(v) ? RLIM_INFINITY : static_cast<rlim_t>(v); }

static Napi::Value Getrlimit(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  struct rlimit rl{};
  if (getrlimit(IntArg(info, 0), &rl) == -1) return Errno(env);
  Napi::Array out = Napi::Array::New(env, 2);
  out.Set(0u, Num(env, FromRlim(rl.rlim_cur)));
  out.Set(1u, Num(env, FromRlim(rl.rlim_max)));
  return out;
}

static Napi::Value Setrlimit(const Napi::CallbackInfo& info) {
  struct rlimit rl{ToRlim(info[1].As<Napi::Number>().DoubleValue()), ToRlim(info[2].As<Napi::Number>().DoubleValue())};
  if (setrlimit(IntArg(info, 0), &rl) == -1) return Errno(info.Env());
  return Num(info.Env(), 0);
}

void InitRlimit(Napi::Env env, Napi::Object exports) {
  exports["getrlimit"] = Napi::Function::New(env, Getrlimit);
  exports["setrlimit"] = Napi::Function::New(env, Setrlimit);
  Napi::Object r = Napi::Object::New(env);
  r["AS"] = Num(env, RLIMIT_AS);
  r["CORE"] = Num(env, RLIMIT_CORE);
  r["CPU"] = Num(env, RLIMIT_CPU);
  r["DATA"] = Num(env, RLIMIT_DATA);
  r["FSIZE"] = Num(env, RLIMIT_FSIZE);
  r["MEMLOCK"] = Num(env, RLIMIT_MEMLOCK);
  r["MSGQUEUE"] = Num(env, RLIMIT_MSGQUEUE);
  r["NICE"] = Num(env, RLIMIT_NICE);
  r["NOFILE"] = Num(env, RLIMIT_NOFILE);
  r["NPROC"] = Num(env, RLIMIT_NPROC);
  r["RSS"] = Num(env, RLIMIT_RSS);
  r["RTPRIO"] = Num(env, RLIMIT_RTPRIO);
  r["RTTIME"] = Num(env, RLIMIT_RTTIME);
  r["SIGPENDING"] = Num(env, RLIMIT_SIGPENDING);
  r["STACK"] = Num(env, RLIMIT_STACK);
  exports["RLIMIT"] = r;
}

}  // namespace unixproc
