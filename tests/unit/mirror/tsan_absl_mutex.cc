// ThreadSanitizer builds only (-Db_sanitize=thread): tells TSan how
// absl::Mutex synchronises.
//
// Debian's Abseil is not built with TSan, so its Mutex takes and releases
// the lock in code TSan does not see: every access a mutex orders looks like
// a race to it (hundreds of reports in the mirror tests, all of them under a
// MutexLock). An Abseil built with TSan reports each lock and unlock to TSan
// through its mutex annotations; this file does the same from outside. The
// test executables are linked with --wrap for the Abseil calls our code makes
// (Mutex::Lock, Mutex::Unlock, ~Mutex, CondVar::WaitWithDeadline; see
// tests/unit/mirror/meson.build), so each call reaches a wrapper below that
// reports it around the real call. The edges reported are exactly the
// mutex's: a race on data accessed without the mutex is still reported.
#include <sanitizer/tsan_interface.h>

#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

// The mangled names come from meson (they hold Abseil's inline namespace).
extern "C" {
void RealMutexLock(absl::Mutex* mu) __asm__("__real_" TANDEM_ABSL_MUTEX_LOCK);
void RealMutexUnlock(absl::Mutex* mu) __asm__("__real_" TANDEM_ABSL_MUTEX_UNLOCK);
void RealMutexDestroy(absl::Mutex* mu) __asm__("__real_" TANDEM_ABSL_MUTEX_DTOR);
bool RealCondVarWaitWithDeadline(absl::CondVar* cv, absl::Mutex* mu, absl::Time deadline) __asm__(
    "__real_" TANDEM_ABSL_CONDVAR_WAIT_DEADLINE);

void WrapMutexLock(absl::Mutex* mu) __asm__("__wrap_" TANDEM_ABSL_MUTEX_LOCK);
void WrapMutexUnlock(absl::Mutex* mu) __asm__("__wrap_" TANDEM_ABSL_MUTEX_UNLOCK);
void WrapMutexDestroy(absl::Mutex* mu) __asm__("__wrap_" TANDEM_ABSL_MUTEX_DTOR);
bool WrapCondVarWaitWithDeadline(absl::CondVar* cv, absl::Mutex* mu, absl::Time deadline) __asm__(
    "__wrap_" TANDEM_ABSL_CONDVAR_WAIT_DEADLINE);
}

void WrapMutexLock(absl::Mutex* mu) {
  __tsan_mutex_pre_lock(mu, 0);
  RealMutexLock(mu);
  __tsan_mutex_post_lock(mu, 0, 0);
}

void WrapMutexUnlock(absl::Mutex* mu) {
  __tsan_mutex_pre_unlock(mu, 0);
  RealMutexUnlock(mu);
  __tsan_mutex_post_unlock(mu, 0);
}

void WrapMutexDestroy(absl::Mutex* mu) {
  __tsan_mutex_destroy(mu, 0);
  RealMutexDestroy(mu);
}

// Waiting releases the mutex and takes it again before returning.
bool WrapCondVarWaitWithDeadline(absl::CondVar* cv, absl::Mutex* mu, absl::Time deadline) {
  __tsan_mutex_pre_unlock(mu, 0);
  __tsan_mutex_post_unlock(mu, 0);
  bool timed_out = RealCondVarWaitWithDeadline(cv, mu, deadline);
  __tsan_mutex_pre_lock(mu, 0);
  __tsan_mutex_post_lock(mu, 0, 0);
  return timed_out;
}
