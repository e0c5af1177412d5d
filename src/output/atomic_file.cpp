#include "output/atomic_file.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <vector>

#include "base/emergency.hpp"
#include "base/error.hpp"

namespace pyinspect {

AtomicFile::AtomicFile(const std::string& path, const std::string& shown)
    : path_(path), shown_(shown.empty() ? path : shown) {
  std::string pattern = path + ".tmp.XXXXXX";
  std::vector<char> name(pattern.begin(), pattern.end());
  name.push_back('\0');
  int fd = mkstemp(name.data());
  if (fd < 0) throw Error(ErrorCode::Output, "cannot write " + shown_ + ": " + std::strerror(errno));
  // mkstemp makes the file 0600; the finished file gets the mode any new file would (0666 less
  // the umask), as a shell redirection gives.
  mode_t mask = umask(0);
  umask(mask);
  fchmod(fd, 0666 & ~mask);
  close(fd);
  tmp_ = name.data();
  emergency_add_file(tmp_.c_str());
  out.open(tmp_, std::ios::binary | std::ios::trunc);
  if (!out) {
    int err = errno;
    unlink(tmp_.c_str());
    emergency_remove_file(tmp_.c_str());
    throw Error(ErrorCode::Output, "cannot write " + shown_ + ": " + std::strerror(err));
  }
}

void AtomicFile::commit() {
  out.flush();
  bool ok = static_cast<bool>(out);
  int err = errno;
  out.close();
  if (ok && rename(tmp_.c_str(), path_.c_str()) == 0) {
    done_ = true;
    emergency_remove_file(tmp_.c_str());
    return;
  }
  if (ok) err = errno;
  unlink(tmp_.c_str());
  emergency_remove_file(tmp_.c_str());
  done_ = true;
  throw Error(ErrorCode::Output, "cannot write " + shown_ + ": " + std::strerror(err));
}

AtomicFile::~AtomicFile() {
  if (done_) return;
  out.close();
  unlink(tmp_.c_str());
  emergency_remove_file(tmp_.c_str());
}

void write_file_atomically(const std::string& path, const std::string& text, const std::string& shown) {
  AtomicFile f(path, shown);
  f.out << text;
  f.commit();
}

}  // namespace pyinspect
