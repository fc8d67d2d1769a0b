// Errors the user can act on. Every user-facing failure (bad file, bad flag, bad field) is thrown as
// st::Error whose message names the file/flag/field, what was expected and what was found; the CLI
// prints it on one line and exits non-zero. `assert` is never used for user input.
#pragma once

#include <fmt/format.h>

#include <stdexcept>
#include <string>
#include <utility>

namespace st {

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& message) : std::runtime_error(message) {}
};

template <typename... Args>
[[noreturn]] void fail(fmt::format_string<Args...> format, Args&&... args) {
  throw Error(fmt::format(format, std::forward<Args>(args)...));
}

// Internal invariant check (a bug in sparsetrain, not bad input): still a clear message, never UB.
#define ST_CHECK(condition, ...)                                                          \
  do {                                                                                    \
    if (!(condition)) ::st::fail("internal check failed ({}:{}): {}", __FILE__, __LINE__, \
                                 ::fmt::format(__VA_ARGS__));                             \
  } while (0)

}  // namespace st
