#include "core/repo_lock.h"

#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include "archiver_test_util.h"
#include "core/error.h"

namespace walvault {
namespace {

TEST(RepoLock, OneHolderAtATimeAndTheSecondIsToldWho) {
  testing::TempDir tmp;
  Repository repo = testing::make_test_repo(tmp.path());
  EXPECT_FALSE(archiver_running(repo));
  {
    RepoLock lock = RepoLock::acquire(repo, kArchiverLockName, "walvault archive");
    EXPECT_TRUE(archiver_running(repo));
    auto holder = lock_holder(repo, kArchiverLockName);
    ASSERT_TRUE(holder);
    EXPECT_EQ(holder->pid, std::to_string(::getpid()));
    try {
      RepoLock::acquire(repo, kArchiverLockName, "walvault archive");
      FAIL() << "a second archiver got the lock";
    } catch (const Error& e) {
      const std::string what = e.what();
      EXPECT_NE(what.find("walvault archive is already running on repository"), std::string::npos)
          << what;
      EXPECT_NE(what.find("pid " + std::to_string(::getpid()) + " on host "), std::string::npos)
          << what;
    }
  }
  EXPECT_FALSE(archiver_running(repo));
}

TEST(RepoLock, ALockOfADeadProcessIsTakenOver) {
  testing::TempDir tmp;
  Repository repo = testing::make_test_repo(tmp.path());
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    try {
      RepoLock lock = RepoLock::acquire(repo, kArchiverLockName, "walvault archive");
      ::_exit(0);  // dies holding it, like kill -9
    } catch (...) {
      ::_exit(1);
    }
  }
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  EXPECT_NE(read_file(repo.lock_dir() / "archiver.lock").find("pid=" + std::to_string(child)),
            std::string::npos);
  EXPECT_FALSE(archiver_running(repo));
  RepoLock lock = RepoLock::acquire(repo, kArchiverLockName, "walvault archive");
  EXPECT_NE(read_file(repo.lock_dir() / "archiver.lock").find("pid=" + std::to_string(::getpid())),
            std::string::npos);
}

}  // namespace
}  // namespace walvault
