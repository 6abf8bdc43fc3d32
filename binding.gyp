# (gyp files take Python comments.) The code is C++17; the language level is left to
# node-gyp because the v8.h of Node 24 needs C++20.
{
  "targets": [
    {
      "target_name": "unixproc",
      "sources": [
        "native/addon.cc",
        "native/fd.cc",
        "native/fork.cc",
        "native/process.cc",
        "native/rlimit.cc",
        "native/shm.cc",
        "native/signal.cc",
        "native/socket.cc",
        "native/title.cc",
        "native/wait.cc"
      ],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
      "defines": ["NAPI_DISABLE_CPP_EXCEPTIONS"],
      "cflags_cc": ["-Wall", "-Wextra", "-Wno-unused-parameter", "-Wno-missing-field-initializers", "-Wno-cast-function-type"]
    }
  ]
}
