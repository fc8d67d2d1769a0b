#include "engine/op_times.h"

namespace st {
namespace {
thread_local OpTimes* current_times = nullptr;
}  // namespace

OpTimes* active_op_times() { return current_times; }

OpTimeScope::OpTimeScope(OpTimes& times) : previous_(current_times) { current_times = &times; }
OpTimeScope::~OpTimeScope() { current_times = previous_; }

}  // namespace st
