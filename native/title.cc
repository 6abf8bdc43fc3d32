// Process title as ps and /proc/PID/cmdline show it. The kernel reads a process's
// command line from the memory between arg_start and arg_end (and, once the byte at
// arg_end-1 is no longer NUL, up to a page from arg_start). libuv only reuses the argv
// strings, so a title is capped at the original command's length; here the environment
// strings that follow argv are first copied to the heap (environ is repointed), which
// frees the whole argv+env block for the title, as setproctitle(3) does.
#include "common.h"
#include <cstdio>
#include <cstring>
#include <string>
#include <sys/prctl.h>
#include <unistd.h>

extern char** environ;

namespace unixproc {

static char* area = nullptr;
static size_t area_len = 0;

static bool ReadProcStatRanges(unsigned long v[4]) {
  FILE* f = fopen("/proc/self/stat", "r");
  if (!f) return false;
  char buf[4096];
  size_t n = fread(buf, 1, sizeof(buf) - 1, f);
  fclose(f);
  buf[n] = 0;
  char* p = strrchr(buf, ')');  // comm may hold spaces and parentheses
  if (!p) return false;
  p += 2;  // field 3 starts here
  int field = 3;
  while (field < 48 && *p) {
    if (*p++ == ' ') field++;
  }
  return sscanf(p, "%lu %lu %lu %lu", &v[0], &v[1], &v[2], &v[3]) == 4;
}

static bool PrepareArea() {
  if (area) return true;
  unsigned long r[4];  // arg_start arg_end env_start env_end
  if (!ReadProcStatRanges(r)) return false;
  unsigned long end = r[1];
  if (r[2] == r[1]) {  // environment strings sit right after argv: take them too
    for (char** e = environ; e && *e; e++) {
      unsigned long a = reinterpret_cast<unsigned long>(*e);
      if (a >= r[2] && a < r[3]) *e = strdup(*e);
    }
    end = r[3];
  }
  area = reinterpret_cast<char*>(r[0]);
  area_len = end - r[0];
  return area_len > 1;
}

// setTitle(title) -> number of bytes shown, or -errno
static Napi::Value SetTitle(const Napi::CallbackInfo& info) {
  std::string t = info[0].As<Napi::String>().Utf8Value();
  if (!PrepareArea()) return Num(info.Env(), -ENOSYS);
  size_t n = t.size() < area_len - 1 ? t.size() : area_len - 1;
  memset(area, 0, area_len);
  memcpy(area, t.data(), n);
  prctl(PR_SET_NAME, t.substr(0, 15).c_str(), 0, 0, 0);
  return Num(info.Env(), static_cast<double>(n));
}

void InitTitle(Napi::Env env, Napi::Object exports) {
  exports["setTitle"] = Napi::Function::New(env, SetTitle);
}

}  // namespace unixproc
