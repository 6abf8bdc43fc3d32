// The steps around fork(2) that can only be done in C. A Node process is not
// fork-safe as it stands (see ../docs/fork-in-node.md):
//  - threads other than the caller vanish in the child, and a lock or condition
//    variable they were using stays wedged there, so the V8 platform workers and
//    the libuv threadpool are first parked in a task of ours, idle and lock-free;
//  - V8 marks its heap MADV_DONTFORK, so every mapping is set MADV_DOFORK again;
//  - the child re-creates its event loop's kernel objects with uv_loop_fork.
// Everything else (when fork is allowed, what the child resets in JS) is TypeScript.
#include "common.h"
#include <node.h>
#include <uv.h>
#include <v8.h>

#include <chrono>
#include <condition_variable>
#include <csignal>
#include <cstring>
#include <fcntl.h>
#include <memory>
#include <mutex>
#include <sys/mman.h>
#include <unistd.h>
#include <vector>

namespace unixproc {

namespace {

// A set of threads held inside one of our tasks until Release(). A fresh Parking is
// made for every fork: the child must never touch a condition variable that threads
// of its parent were waiting on.
struct Parking {
  std::mutex m;
  std::condition_variable cv;
  int parked = 0;
  bool released = false;

  void Hold() {
    std::unique_lock<std::mutex> l(m);
    if (released) return;  // a surplus task that ran after the fork: nothing to hold
    parked++;
    cv.notify_all();
    cv.wait(l, [this] { return released; });
  }
  bool WaitFor(int n, std::chrono::steady_clock::time_point deadline) {
    std::unique_lock<std::mutex> l(m);
    return cv.wait_until(l, deadline, [&] { return parked >= n; });
  }
  void Release() {
    std::lock_guard<std::mutex> l(m);
    released = true;
    cv.notify_all();
  }
};

class ParkTask : public v8::Task {
 public:
  explicit ParkTask(std::shared_ptr<Parking> p) : p_(std::move(p)) {}
  void Run() override { p_->Hold(); }

 private:
  std::shared_ptr<Parking> p_;
};

struct UvPark {
  uv_work_t req;
  std::shared_ptr<Parking> p;
};

void UvParkWork(uv_work_t* req) { static_cast<UvPark*>(req->data)->p->Hold(); }
void UvParkAfter(uv_work_t* req, int) { delete static_cast<UvPark*>(req->data); }

// V8 reserves its heap with MADV_DONTFORK; a child without those pages crashes on
// its first step into JS. New regions appear as the heap grows, so this runs at
// every fork. /proc/self/maps is cheap to read (no page statistics, unlike smaps);
// MADV_DOFORK is harmless on a mapping that was not DONTFORK, and EINVAL on special
// mappings (VM_IO) is expected and ignored.
int ClearDontfork() {
  int fd = open("/proc/self/maps", O_RDONLY | O_CLOEXEC);
  if (fd == -1) return -errno;
  std::vector<char> buf;
  char chunk[65536];
  ssize_t n;
  while ((n = RetryEintr([&] { return read(fd, chunk, sizeof chunk); })) > 0) buf.insert(buf.end(), chunk, chunk + n);
  close(fd);
  buf.push_back(0);
  int count = 0;
  for (char* line = buf.data(); *line;) {
    char* end = nullptr;
    unsigned long lo = strtoul(line, &end, 16);
    unsigned long hi = strtoul(end + 1, nullptr, 16);
    if (hi > lo && madvise(reinterpret_cast<void*>(lo), hi - lo, MADV_DOFORK) == 0) count++;
    char* nl = strchr(line, '\n');
    if (!nl) break;
    line = nl + 1;
  }
  return count;
}

// An async handle whose wake-up was sent but not yet delivered when we forked would
// stay "pending" in the child with nobody to deliver it, and libuv then swallows every
// later uv_async_send on it (the threadpool's completions among them). The pending
// ones are noted before fork and sent again in the child.
void NotePending(uv_handle_t* h, void* arg) {
  if (h->type != UV_ASYNC) return;
  auto* a = reinterpret_cast<uv_async_t*>(h);
  if (a->pending) static_cast<std::vector<uv_async_t*>*>(arg)->push_back(a);
}

void ForgetCaughtSignals(uv_handle_t* h, void*) {
  if (h->type != UV_SIGNAL) return;
  auto* s = reinterpret_cast<uv_signal_t*>(h);
  s->caught_signals = s->dispatched_signals;
}

}  // namespace

static Napi::Value PlatformThreads(const Napi::CallbackInfo& info) {
  v8::Isolate* isolate = v8::Isolate::GetCurrent();
  node::Environment* nenv = node::GetCurrentEnvironment(isolate->GetCurrentContext());
  node::MultiIsolatePlatform* platform = node::GetMultiIsolatePlatform(nenv);
  return Num(info.Env(), platform ? platform->NumberOfWorkerThreads() : -1);
}

// fork(platformTasks, platformParked, uvPoolSize, timeoutMs)
//   -> 0 in the child, the child's pid in the parent, or a negative errno:
//      -EBUSY when the libuv threadpool did not go idle in time,
//      -ETIMEDOUT when the V8 platform workers did not.
static Napi::Value Fork(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int platformTasks = IntArg(info, 0);
  int platformParked = IntArg(info, 1);
  int uvPool = IntArg(info, 2);
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(IntArg(info, 3));

  uv_loop_t* loop = uv_default_loop();
  auto pool = std::make_shared<Parking>();
  auto plat = std::make_shared<Parking>();
  auto release = [&] {
    plat->Release();
    pool->Release();
  };

  for (int i = 0; i < uvPool; i++) {
    auto* w = new UvPark{{}, pool};
    w->req.data = w;
    if (uv_queue_work(loop, &w->req, UvParkWork, UvParkAfter) != 0) {
      delete w;
      release();
      return Num(env, -EAGAIN);
    }
  }
  if (!pool->WaitFor(uvPool, deadline)) {
    release();
    return Num(env, -EBUSY);
  }

  v8::Isolate* isolate = v8::Isolate::GetCurrent();
  node::MultiIsolatePlatform* platform =
      node::GetMultiIsolatePlatform(node::GetCurrentEnvironment(isolate->GetCurrentContext()));
  if (platform) {
    for (int i = 0; i < platformTasks; i++) platform->CallOnWorkerThread(std::make_unique<ParkTask>(plat));
  }
  if (!plat->WaitFor(platform ? platformParked : 0, deadline)) {
    release();
    return Num(env, -ETIMEDOUT);
  }

  ClearDontfork();
  std::vector<uv_async_t*> pending;
  uv_walk(loop, NotePending, &pending);

  // No signal may run a handler between fork(2) and uv_loop_fork in the child: libuv's
  // handler would write to the signal pipe still shared with the parent, handing the
  // child's signal to the parent. Blocked, it stays pending and arrives afterwards.
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_BLOCK, &all, &old);
  pid_t pid = fork();
  if (pid == 0) {
    // Only this thread exists now. The parkings are leaked on purpose: their
    // condition variables still list waiters that live on in the parent only.
    new std::shared_ptr<Parking>(pool);
    new std::shared_ptr<Parking>(plat);
    uv_loop_fork(loop);
    // Our threadpool requests will never complete here: stop them keeping the loop alive.
    loop->active_reqs.count -= uvPool;
    for (uv_async_t* a : pending) {
      a->pending = 0;
      uv_async_send(a);
    }
    // Signals the parent caught but had not dispatched are the parent's: their messages
    // stayed in the old pipe. Left counted, a closed handle would never finish closing.
    uv_walk(loop, ForgetCaughtSignals, nullptr);
    pthread_sigmask(SIG_SETMASK, &old, nullptr);
    return Num(env, 0);
  }
  int err = errno;
  pthread_sigmask(SIG_SETMASK, &old, nullptr);
  release();
  return Num(env, pid == -1 ? -err : pid);
}

// The natural end of a forked child. When the loop runs dry, Node waits for every
// task posted to its platform workers (NodePlatform::DrainTasks) before 'beforeExit';
// in the child our parking tasks never finish, so it would wait forever. A ref'd
// prepare handle keeps the loop from running dry, and when it is the only thing left
// alive it plays Node's part: emit 'beforeExit', and if that scheduled nothing, exit.
namespace {
uv_prepare_t exit_watch;
Napi::FunctionReference* on_before_exit = nullptr;
Napi::FunctionReference* on_exit = nullptr;
napi_env watch_env = nullptr;
napi_async_context watch_ctx = nullptr;

bool LoopIdleButUs(uv_loop_t* loop) {
  return loop->active_handles <= 1 && loop->active_reqs.count == 0 && loop->closing_handles == nullptr;
}

void ExitWatch(uv_prepare_t* h) {
  if (!LoopIdleButUs(h->loop)) return;
  Napi::Env env(watch_env);
  Napi::HandleScope scope(env);
  Napi::Object recv = Napi::Object::New(env);
  on_before_exit->MakeCallback(recv, {}, watch_ctx);
  if (env.IsExceptionPending()) env.GetAndClearPendingException();  // a fork(fn) in 'beforeExit'
  if (!LoopIdleButUs(h->loop)) return;
  on_exit->MakeCallback(recv, {}, watch_ctx);
}
}  // namespace

// armExitWatch(beforeExit, exit): called once in a forked child.
static Napi::Value ArmExitWatch(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  watch_env = env;
  on_before_exit = new Napi::FunctionReference(Napi::Persistent(info[0].As<Napi::Function>()));
  on_exit = new Napi::FunctionReference(Napi::Persistent(info[1].As<Napi::Function>()));
  napi_async_init(env, nullptr, Napi::String::New(env, "unixproc:exit-watch"), &watch_ctx);
  uv_prepare_init(uv_default_loop(), &exit_watch);
  uv_prepare_start(&exit_watch, ExitWatch);
  return env.Undefined();
}

// abandonStack(run, beforeReset, afterReset): in a forked child, ends the JS that
// called fork without running another statement of it (not even its finally blocks),
// then calls run() from the top of the event loop. V8's TerminateExecution unwinds every
// JS frame; once none is left (V8 tells when its outermost call, or a microtask
// checkpoint, completes) the termination is cancelled and Node's async-context stack,
// which the unwound frames left pushed, is reset the way Node resets it after a handled
// uncaught exception: beforeReset() installs a capture and returns the error to raise,
// afterReset() restores what it changed. A child that forks again does all this again.
namespace {
uv_idle_t resume_handle;
bool resume_handle_ready = false;
Napi::FunctionReference resume_fn, before_reset_fn, after_reset_fn;
napi_env resume_env = nullptr;
napi_async_context resume_ctx = nullptr;
v8::Global<v8::Context> resume_context;
bool unwinding = false;

void FinishUnwind(v8::Isolate* isolate) {
  if (!unwinding) return;
  if (v8::StackTrace::CurrentStackTrace(isolate, 1)->GetFrameCount() > 0) return;
  unwinding = false;
  isolate->CancelTerminateExecution();
  v8::HandleScope hs(isolate);
  v8::Context::Scope cs(resume_context.Get(isolate));
  Napi::Env env(resume_env);
  Napi::HandleScope scope(env);
  Napi::Value error = before_reset_fn.Call({});
  napi_fatal_exception(env, error);
  after_reset_fn.Call({});
}

void OnCallCompleted(v8::Isolate* isolate) { FinishUnwind(isolate); }
void OnMicrotasksCompleted(v8::Isolate* isolate, void*) { FinishUnwind(isolate); }

void ResumeAtTop(uv_idle_t* h) {
  uv_idle_stop(h);
  FinishUnwind(v8::Isolate::GetCurrent());
  Napi::Env env(resume_env);
  Napi::HandleScope scope(env);
  resume_fn.MakeCallback(Napi::Object::New(env), {}, resume_ctx);
  // A grandchild forked by run() abandoned this very call: Node-API kept the
  // termination as this env's pending exception, which would fail its next call.
  if (env.IsExceptionPending()) env.GetAndClearPendingException();
}
}  // namespace

static Napi::Value AbandonStack(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  v8::Isolate* isolate = v8::Isolate::GetCurrent();
  resume_env = env;
  resume_fn.Reset(info[0].As<Napi::Function>(), 1);
  before_reset_fn.Reset(info[1].As<Napi::Function>(), 1);
  after_reset_fn.Reset(info[2].As<Napi::Function>(), 1);
  resume_context.Reset(isolate, isolate->GetCurrentContext());
  if (!resume_handle_ready) {
    resume_handle_ready = true;
    napi_async_init(env, nullptr, Napi::String::New(env, "unixproc:fork-block"), &resume_ctx);
    uv_idle_init(uv_default_loop(), &resume_handle);
    // An idle handle, not a ref'd timer: it keeps the loop from blocking in poll until
    // run() has been called, and then stops.
    isolate->AddCallCompletedCallback(OnCallCompleted);
    isolate->AddMicrotasksCompletedCallback(OnMicrotasksCompleted, nullptr);
  }
  uv_idle_start(&resume_handle, ResumeAtTop);
  unwinding = true;
  isolate->TerminateExecution();
  return env.Undefined();
}

static Napi::Value ClearDontforkJs(const Napi::CallbackInfo& info) { return Num(info.Env(), ClearDontfork()); }

// V8's answer to low memory: full GCs that also shrink the young generation and hand
// pooled pages back to the kernel. Before forking many children this keeps the garbage
// and the empty semi-spaces out of what every child maps (and would copy on write).
static Napi::Value LowMemoryNotification(const Napi::CallbackInfo& info) {
  v8::Isolate::GetCurrent()->LowMemoryNotification();
  return info.Env().Undefined();
}

static Napi::Value Strerror(const Napi::CallbackInfo& info) {
  return Napi::String::New(info.Env(), strerror(IntArg(info, 0)));
}

void InitFork(Napi::Env env, Napi::Object exports) {
  exports["fork"] = Napi::Function::New(env, Fork);
  exports["platformThreads"] = Napi::Function::New(env, PlatformThreads);
  exports["armExitWatch"] = Napi::Function::New(env, ArmExitWatch);
  exports["abandonStack"] = Napi::Function::New(env, AbandonStack);
  exports["clearDontfork"] = Napi::Function::New(env, ClearDontforkJs);
  exports["lowMemoryNotification"] = Napi::Function::New(env, LowMemoryNotification);
  exports["strerror"] = Napi::Function::New(env, Strerror);
}

}  // namespace unixproc
