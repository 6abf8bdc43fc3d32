// Entry point of the native addon: registers each area's syscall wrappers on one
// exports object. All policy lives in src/*.ts.
#include "common.h"
#include <node_version.h>
#include <string>

static Napi::Object Init(Napi::Env env, Napi::Object exports) {
  unixproc::InitFork(env, exports);
  unixproc::InitProcess(env, exports);
  unixproc::InitWait(env, exports);
  unixproc::InitSignal(env, exports);
  unixproc::InitRlimit(env, exports);
  unixproc::InitTitle(env, exports);
  unixproc::InitFd(env, exports);
  unixproc::InitSocket(env, exports);
  unixproc::InitShm(env, exports);
  // The addon uses Node's embedder API, so it fits one Node ABI only: say which.
  exports["builtForModules"] = Napi::String::New(env, std::to_string(NODE_MODULE_VERSION));
  return exports;
}

NODE_API_MODULE(unixproc, Init)
