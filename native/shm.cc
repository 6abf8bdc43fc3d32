// Memory shared with the children forked afterwards: an anonymous MAP_SHARED mapping
// (fork copies private memory, but a shared mapping stays one set of pages in parent
// and children), returned as an ArrayBuffer over it.
#include "common.h"
#include <sys/mman.h>

namespace unixproc {

// mapShared(bytes) -> ArrayBuffer, or a negative errno.
static Napi::Value MapShared(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  size_t len = static_cast<size_t>(info[0].As<Napi::Number>().Int64Value());
  void* p = mmap(nullptr, len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) return Errno(env);
  return Napi::ArrayBuffer::New(env, p, len, [](Napi::Env, void* data, size_t* size) {
    munmap(data, *size);
    delete size;
  }, new size_t(len));
}

void InitShm(Napi::Env env, Napi::Object exports) {
  exports["mapShared"] = Napi::Function::New(env, MapShared);
}

}  // namespace unixproc
