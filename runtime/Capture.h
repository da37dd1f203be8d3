//===- runtime/Capture.h - libbpf's and libxdp's output, kept ----*- C++
//-*-===//
//
/// \file
/// Private to runtime/: while a LibbpfCapture lives, what libbpf and libxdp
/// print goes into a buffer, so a failure can carry the verifier's log in
/// LoadError::log (and the loader can look for lines that mean failure)
/// instead of spraying it over stderr.
//===----------------------------------------------------------------------===//
#pragma once

#include <bpf/libbpf.h>
#include <xdp/libxdp.h>

#include <cstdarg>
#include <cstdio>
#include <string>
#include <string_view>

namespace r2x::runtime::detail {

/// Routes libbpf's and libxdp's WARN and INFO output into a buffer while
/// alive. DEBUG stays out: it is megabytes of relocation chatter.
class LibbpfCapture {
public:
  LibbpfCapture()
      : previous_(libbpf_set_print(&LibbpfCapture::print)),
        previousXdp_(libxdp_set_print(&LibbpfCapture::printXdp)) {
    active_ = this;
  }
  ~LibbpfCapture() {
    libbpf_set_print(previous_);
    libxdp_set_print(previousXdp_);
    active_ = nullptr;
  }
  LibbpfCapture(const LibbpfCapture &) = delete;
  LibbpfCapture &operator=(const LibbpfCapture &) = delete;

  const std::string &text() const { return text_; }

  /// The end of the verifier log if libbpf printed one (the rejected
  /// instruction and the reason are at its end), otherwise the end of
  /// everything libbpf said.
  std::string excerpt() const {
    constexpr std::string_view Begin = "-- BEGIN PROG LOAD LOG --";
    constexpr std::string_view End = "-- END PROG LOAD LOG --";
    std::string_view text = text_;
    std::size_t begin = text.rfind(Begin);
    if (begin != std::string_view::npos) {
      text.remove_prefix(begin);
      std::size_t nl = text.find('\n');
      text.remove_prefix(nl == std::string_view::npos ? text.size() : nl + 1);
      text = text.substr(0, text.find(End));
    }
    return lastLines(text, 25);
  }

private:
  static std::string lastLines(std::string_view text, std::size_t count) {
    while (!text.empty() && text.back() == '\n')
      text.remove_suffix(1);
    std::size_t start = 0, seen = 0;
    for (std::size_t i = text.size(); i-- > 0;)
      if (text[i] == '\n' && ++seen == count) {
        start = i + 1;
        break;
      }
    std::string lines(text.substr(start));
    if (!lines.empty())
      lines += '\n';
    return lines;
  }

  static int print(enum libbpf_print_level level, const char *format,
                   va_list args) {
    if (level == LIBBPF_DEBUG || !active_)
      return 0;
    va_list copy;
    va_copy(copy, args);
    int length = std::vsnprintf(nullptr, 0, format, copy);
    va_end(copy);
    if (length <= 0)
      return length;
    std::string &text = active_->text_;
    std::size_t old = text.size();
    text.resize(old + std::size_t(length) + 1);
    std::vsnprintf(text.data() + old, std::size_t(length) + 1, format, args);
    text.resize(old + std::size_t(length)); // drop vsnprintf's NUL
    return length;
  }

  /// libxdp's levels are libbpf's (libxdp.h says so).
  static int printXdp(enum libxdp_print_level level, const char *format,
                      va_list args) {
    return print(static_cast<enum libbpf_print_level>(level), format, args);
  }

  static inline LibbpfCapture *active_ = nullptr;
  libbpf_print_fn_t previous_;
  libxdp_print_fn_t previousXdp_;
  std::string text_;
};

} // namespace r2x::runtime::detail
