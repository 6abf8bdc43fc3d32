// Identity, sessions, process groups, kill(2), exec and the immediate exit used by
// exitNow and by forked children (whose normal Node teardown is not fork-safe).
#include "common.h"
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <sys/prctl.h>
#include <unistd.h>
#include <vector>

namespace unixproc {

static Napi::Value GetPid(const Napi::CallbackInfo& info) { return Num(info.Env(), getpid()); }
static Napi::Value GetPpid(const Napi::CallbackInfo& info) { return Num(info.Env(), getppid()); }

static Napi::Value Kill(const Napi::CallbackInfo& info) {
  if (kill(IntArg(info, 0), IntArg(info, 1)) == -1) return Errno(info.Env());
  return Num(info.Env(), 0);
}

static Napi::Value Setsid(const Napi::CallbackInfo& info) {
  pid_t r = setsid();
  return r == -1 ? Errno(info.Env()) : Num(info.Env(), r);
}

static Napi::Value Getpgrp(const Napi::CallbackInfo& info) { return Num(info.Env(), getpgrp()); }

static Napi::Value Setpgid(const Napi::CallbackInfo& info) {
  if (setpgid(IntArg(info, 0), IntArg(info, 1)) == -1) return Errno(info.Env());
  return Num(info.Env(), 0);
}

static Napi::Value Getpgid(const Napi::CallbackInfo& info) {
  pid_t r = getpgid(IntArg(info, 0));
  return r == -1 ? Errno(info.Env()) : Num(info.Env(), r);
}

static Napi::Value Getsid(const Napi::CallbackInfo& info) {
  pid_t r = getsid(IntArg(info, 0));
  return r == -1 ? Errno(info.Env()) : Num(info.Env(), r);
}

// Flushes C stdio and leaves without running atexit handlers or Node's teardown.
// Node's own stdout/stderr writes are synchronous on Linux for files, pipes and TTYs.
static Napi::Value ExitNow(const Napi::CallbackInfo& info) {
  fflush(nullptr);
  _exit(IntArg(info, 0));
  return info.Env().Undefined();
}

// execvp(file, argv) replacing this process image. Returns only on failure.
static Napi::Value Exec(const Napi::CallbackInfo& info) {
  std::string file = info[0].As<Napi::String>().Utf8Value();
  Napi::Array args = info[1].As<Napi::Array>();
  std::vector<std::string> store;
  for (uint32_t i = 0; i < args.Length(); i++) store.push_back(args.Get(i).As<Napi::String>().Utf8Value());
  std::vector<char*> argv;
  for (auto& s : store) argv.push_back(const_cast<char*>(s.c_str()));
  argv.push_back(nullptr);
  execvp(file.c_str(), argv.data());
  return Errno(info.Env());
}

// Becomes (or stops being) a child subreaper: orphaned descendants are re-parented to
// this process instead of init, so it can reap them (what tini does as PID 1).
static Napi::Value SetSubreaper(const Napi::CallbackInfo& info) {
  if (prctl(PR_SET_CHILD_SUBREAPER, info[0].ToBoolean() ? 1 : 0, 0, 0, 0) == -1) return Errno(info.Env());
  return Num(info.Env(), 0);
}

static Napi::Value GetSubreaper(const Napi::CallbackInfo& info) {
  int on = 0;
  if (prctl(PR_GET_CHILD_SUBREAPER, &on, 0, 0, 0) == -1) return Errno(info.Env());
  return Num(info.Env(), on);
}

// The signal the kernel sends this process when the thread that forked it dies
// (PR_SET_PDEATHSIG; 0 clears it). Survives fork in neither direction: a child sets its own.
static Napi::Value SetParentDeathSignal(const Napi::CallbackInfo& info) {
  if (prctl(PR_SET_PDEATHSIG, static_cast<unsigned long>(IntArg(info, 0)), 0, 0, 0) == -1) return Errno(info.Env());
  return Num(info.Env(), 0);
}

void InitProcess(Napi::Env env, Napi::Object exports) {
  exports["setParentDeathSignal"] = Napi::Function::New(env, SetParentDeathSignal);
  exports["setSubreaper"] = Napi::Function::New(env, SetSubreaper);
  exports["getSubreaper"] = Napi::Function::New(env, GetSubreaper);
  exports["getpid"] = Napi::Function::New(env, GetPid);
  exports["getppid"] = Napi::Function::New(env, GetPpid);
  exports["kill"] = Napi::Function::New(env, Kill);
  exports["setsid"] = Napi::Function::New(env, Setsid);
  exports["getpgrp"] = Napi::Function::New(env, Getpgrp);
  exports["setpgid"] = Napi::Function::New(env, Setpgid);
  exports["getpgid"] = Napi::Function::New(env, Getpgid);
  exports["getsid"] = Napi::Function::New(env, Getsid);
  exports["exitNow"] = Napi::Function::New(env, ExitNow);
  exports["exec"] = Napi::Function::New(env, Exec);
}

}  // namespace unixproc
