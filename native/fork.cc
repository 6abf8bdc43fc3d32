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
#include <pthread.h>
#include <cstdio>
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
// every fork. /proc/self/maps is cheap to read (no page statistics, unlike smaps).
// MADV_DOFORK is harmless on a mapping that was not DONTFORK; EINVAL on special
// mappings (VM_IO, VM_PFNMAP) is expected, as is ENOMEM for a range unmapped since the
// read. Any other failure may leave heap pages out of the child: the fork is refused.
// Returns the number of mappings set, or a negative errno with *failed naming the call.
int ClearDontfork(const char** failed) {
  *failed = "open";
  int fd = open("/proc/self/maps", O_RDONLY | O_CLOEXEC);
  if (fd == -1) return -errno;
  *failed = "read";
  std::vector<char> buf;
  char chunk[65536];
  ssize_t n;
  while ((n = RetryEintr([&] { return read(fd, chunk, sizeof chunk); })) > 0) buf.insert(buf.end(), chunk, chunk + n);
  int read_err = n < 0 ? errno : 0;
  close(fd);
  if (read_err) return -read_err;
  *failed = "madvise";
  buf.push_back(0);
  int count = 0;
  for (char* line = buf.data(); *line;) {
    char* end = nullptr;
    unsigned long lo = strtoul(line, &end, 16);
    unsigned long hi = strtoul(end + 1, nullptr, 16);
    if (hi > lo) {
      if (madvise(reinterpret_cast<void*>(lo), hi - lo, MADV_DOFORK) == 0) count++;
      else if (errno != EINVAL && errno != ENOMEM) return -errno;
    }
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

// ---- fork(2) in three steps, as libuv splits its spawn ------------------------------

// A failed step: the negative errno and the call that failed, for SystemCallError.
struct StepError {
  int err;
  const char* syscall;
};

// The threads parked for one fork, released in the parent once fork(2) has returned.
struct Parked {
  std::shared_ptr<Parking> pool = std::make_shared<Parking>();
  std::shared_ptr<Parking> platform = std::make_shared<Parking>();
  void Release() {
    platform->Release();
    pool->Release();
  }
};

// libuv aborts the process when it cannot start its threadpool (in a forked child the
// pool starts afresh on the first request), which a child at its RLIMIT_NPROC would
// do. Starting as many threads ourselves first turns that into EAGAIN for the caller.
bool pool_known_running = false;

int TryStartThreads(int n) {
  std::vector<pthread_t> started;
  int err = 0;
  for (int i = 0; i < n; i++) {
    pthread_t t;
    err = pthread_create(&t, nullptr, [](void*) -> void* { return nullptr; }, nullptr);
    if (err != 0) break;
    started.push_back(t);
  }
  for (pthread_t t : started) pthread_join(t, nullptr);
  return err;
}

// Step 1: every thread other than this one waits inside a task of ours, holding no
// lock, so nothing is left locked in the child.
bool ParkThreads(Parked& parked, int platformTasks, int platformParked, int uvPool,
                 std::chrono::steady_clock::time_point deadline, StepError* error) {
  uv_loop_t* loop = uv_default_loop();
  if (!pool_known_running) {
    int err = TryStartThreads(uvPool);
    if (err != 0) {
      *error = {-err, "pthread_create"};
      return false;
    }
  }
  for (int i = 0; i < uvPool; i++) {
    auto* w = new UvPark{{}, parked.pool};
    w->req.data = w;
    int err = uv_queue_work(loop, &w->req, UvParkWork, UvParkAfter);
    if (err != 0) {
      delete w;
      parked.Release();
      *error = {err, "uv_queue_work"};
      return false;
    }
  }
  pool_known_running = true;
  if (!parked.pool->WaitFor(uvPool, deadline)) {
    parked.Release();
    *error = {-EBUSY, "fork"};
    return false;
  }
  v8::Isolate* isolate = v8::Isolate::GetCurrent();
  node::MultiIsolatePlatform* platform =
      node::GetMultiIsolatePlatform(node::GetCurrentEnvironment(isolate->GetCurrentContext()));
  if (platform) {
    for (int i = 0; i < platformTasks; i++) platform->CallOnWorkerThread(std::make_unique<ParkTask>(parked.platform));
  }
  if (!parked.platform->WaitFor(platform ? platformParked : 0, deadline)) {
    parked.Release();
    *error = {-ETIMEDOUT, "fork"};
    return false;
  }
  return true;
}

// In the child nobody is left to hand an error to: say what failed and leave.
[[noreturn]] void ChildFailed(const char* what, int err) {
  char line[160];
  int n = snprintf(line, sizeof line, "unixproc: fork: %s failed in the child: %s\n", what, strerror(err));
  if (n > 0) (void)!write(2, line, static_cast<size_t>(n));
  _exit(70);  // EX_SOFTWARE
}

// Step 3, in the child: only this thread exists; the loop's kernel objects are still
// the parent's and its bookkeeping counts requests that will never complete here.
void RepairChildLoop(uv_loop_t* loop, Parked& parked, int uvPool, const std::vector<uv_async_t*>& pending) {
  // The parkings are leaked on purpose: their condition variables still list waiters
  // that live on in the parent only.
  new Parked(parked);
  pool_known_running = false;
  int err = uv_loop_fork(loop);
  if (err != 0) ChildFailed("uv_loop_fork", -err);
  // Our threadpool requests will never complete here: stop them keeping the loop alive.
  loop->active_reqs.count -= uvPool;
  for (uv_async_t* a : pending) {
    a->pending = 0;
    uv_async_send(a);
  }
  // Signals the parent caught but had not dispatched are the parent's: their messages
  // stayed in the old pipe. Left counted, a closed handle would never finish closing.
  uv_walk(loop, ForgetCaughtSignals, nullptr);
}

// Step 2: fork(2) with every signal blocked. No signal may run a handler between
// fork(2) and uv_loop_fork in the child: libuv's handler would write to the signal
// pipe still shared with the parent, handing the child's signal to the parent.
// Blocked, it stays pending and arrives once the child's loop is its own.
pid_t ForkWithSignalsBlocked(Parked& parked, int uvPool, StepError* error) {
  uv_loop_t* loop = uv_default_loop();
  const char* failed = nullptr;
  int cleared = ClearDontfork(&failed);
  if (cleared < 0) {
    *error = {cleared, failed};
    return -1;
  }
  std::vector<uv_async_t*> pending;
  uv_walk(loop, NotePending, &pending);
  sigset_t all, old;
  sigfillset(&all);
  int err = pthread_sigmask(SIG_BLOCK, &all, &old);
  if (err != 0) {
    *error = {-err, "pthread_sigmask"};
    return -1;
  }
  pid_t pid = fork();
  if (pid == 0) {
    RepairChildLoop(loop, parked, uvPool, pending);
    err = pthread_sigmask(SIG_SETMASK, &old, nullptr);
    if (err != 0) ChildFailed("pthread_sigmask", err);
    return 0;
  }
  int fork_err = errno;
  pthread_sigmask(SIG_SETMASK, &old, nullptr);  // cannot fail: the same mask that was set
  if (pid == -1) *error = {-fork_err, "fork"};
  return pid;
}

// fork(platformTasks, platformParked, uvPoolSize, timeoutMs)
//   -> 0 in the child, the child's pid in the parent, or [-errno, syscall]: among them
//      [-EBUSY, 'fork'] when the libuv threadpool did not go idle in time and
//      [-ETIMEDOUT, 'fork'] when the V8 platform workers did not.
static Napi::Value Fork(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int platformTasks = IntArg(info, 0);
  int platformParked = IntArg(info, 1);
  int uvPool = IntArg(info, 2);
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(IntArg(info, 3));
  Parked parked;
  StepError error{0, nullptr};
  pid_t pid = -1;
  if (ParkThreads(parked, platformTasks, platformParked, uvPool, deadline, &error)) {
    pid = ForkWithSignalsBlocked(parked, uvPool, &error);
    if (pid != 0) parked.Release();
  }
  if (pid >= 0) return Num(env, pid);
  Napi::Array failed = Napi::Array::New(env, 2);
  failed[0u] = Num(env, error.err);
  failed[1u] = Napi::String::New(env, error.syscall);
  return failed;
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
// Allocated once and never freed: destroyed at process exit, after the isolate, they
// would touch freed V8 state.
Napi::FunctionReference& resume_fn = *new Napi::FunctionReference();
Napi::FunctionReference& before_reset_fn = *new Napi::FunctionReference();
Napi::FunctionReference& after_reset_fn = *new Napi::FunctionReference();
v8::Global<v8::Context>& resume_context = *new v8::Global<v8::Context>();
napi_env resume_env = nullptr;
napi_async_context resume_ctx = nullptr;
bool unwinding = false;

void ResetAsyncStack(v8::Isolate* isolate) {
  v8::HandleScope hs(isolate);
  v8::Context::Scope cs(resume_context.Get(isolate));
  Napi::Env env(resume_env);
  Napi::HandleScope scope(env);
  Napi::Value error = before_reset_fn.Call({});
  napi_fatal_exception(env, error);
  after_reset_fn.Call({});
}

void FinishUnwind(v8::Isolate* isolate) {
  if (!unwinding) return;
  if (v8::StackTrace::CurrentStackTrace(isolate, 1)->GetFrameCount() > 0) return;
  unwinding = false;
  isolate->CancelTerminateExecution();
  ResetAsyncStack(isolate);
}

void SetResetFunctions(const Napi::CallbackInfo& info, size_t first) {
  v8::Isolate* isolate = v8::Isolate::GetCurrent();
  resume_env = info.Env();
  before_reset_fn.Reset(info[first].As<Napi::Function>(), 1);
  after_reset_fn.Reset(info[first + 1].As<Napi::Function>(), 1);
  resume_context.Reset(isolate, isolate->GetCurrentContext());
}

uv_idle_t warm_handle;
void WarmAtTop(uv_idle_t* h) {
  uv_idle_stop(h);
  uv_close(reinterpret_cast<uv_handle_t*>(h), nullptr);
  ResetAsyncStack(v8::Isolate::GetCurrent());
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
  resume_fn.Reset(info[0].As<Napi::Function>(), 1);
  SetResetFunctions(info, 1);
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

// warmAsyncStackReset(beforeReset, afterReset): runs the reset once from the top of the
// loop, so that a parent compiles its code and its children inherit it compiled.
static Napi::Value WarmAsyncStackReset(const Napi::CallbackInfo& info) {
  SetResetFunctions(info, 0);
  uv_idle_init(uv_default_loop(), &warm_handle);
  uv_idle_start(&warm_handle, WarmAtTop);
  return info.Env().Undefined();
}

static Napi::Value ClearDontforkJs(const Napi::CallbackInfo& info) {
  const char* failed = nullptr;
  return Num(info.Env(), ClearDontfork(&failed));
}

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
  exports["warmAsyncStackReset"] = Napi::Function::New(env, WarmAsyncStackReset);
  exports["clearDontfork"] = Napi::Function::New(env, ClearDontforkJs);
  exports["lowMemoryNotification"] = Napi::Function::New(env, LowMemoryNotification);
  exports["strerror"] = Napi::Function::New(env, Strerror);
}

}  // namespace unixproc
