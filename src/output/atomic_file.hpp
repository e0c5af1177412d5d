#pragma once
// An output file written whole or not at all: the text goes to a temporary file made with
// mkstemp next to the target path (so the rename stays on one filesystem, and no other user can
// have prepared the name), which commit() renames into place. A signal that ends pyinspect
// removes the temporary file (base/emergency), and so does the destructor if commit() was not
// reached.
#include <fstream>
#include <string>

namespace pyinspect {

class AtomicFile {
 public:
  // `shown`: the name errors use (defaults to `path`). Throws Error(Output) if the temporary
  // file cannot be made.
  explicit AtomicFile(const std::string& path, const std::string& shown = "");
  ~AtomicFile();
  AtomicFile(const AtomicFile&) = delete;
  AtomicFile& operator=(const AtomicFile&) = delete;

  std::ofstream out;
  // Flushes and renames into place; throws Error(Output) on failure.
  void commit();
  const std::string& temp_path() const { return tmp_; }

 private:
  std::string path_, shown_, tmp_;
  bool done_ = false;
};

// The whole of `text` into `path`, atomically.
void write_file_atomically(const std::string& path, const std::string& text, const std::string& shown = "");

}  // namespace pyinspect
